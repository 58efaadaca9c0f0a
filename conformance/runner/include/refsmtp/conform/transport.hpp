#pragma once
// How the runner reaches a server: one connection, bytes out and replies in. The runner's own
// small implementation over TCP and OpenSSL (tcp_transport.cpp) shares nothing with the server
// core it may be judging; tests give run_case a scripted transport instead, so every verdict
// path can be shown without sockets.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace refsmtp::conform {

struct ReadResult {
  std::vector<std::string> lines;  // one reply's lines, CRLF removed (empty when none came)
  bool closed = false;             // the server closed the connection (EOF)
  bool timed_out = false;          // nothing complete within the timeout
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends every octet; false when the connection is gone.
  virtual bool send(std::string_view data) = 0;
  // Reads one reply: lines up to one whose fourth octet is not '-'.
  virtual ReadResult read_reply(std::chrono::milliseconds timeout) = 0;
  // TLS handshake now (as a client, any certificate: conformance, not trust). Anything the server
  // sent in the clear and was not read yet is dropped.
  virtual bool start_tls(std::string& error) = 0;
  virtual void close() = 0;
};

// Opens a connection; nullptr with `error` set ("connect: Connection refused").
using Connector =
    std::function<std::unique_ptr<Transport>(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& error)>;

std::unique_ptr<Transport> connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& error);

}  // namespace refsmtp::conform
