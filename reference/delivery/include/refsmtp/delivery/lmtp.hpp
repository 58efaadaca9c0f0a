#pragma once
// Hands a message to a peer over a blocking socket with timeouts: to an external MDA over LMTP
// (RFC 2033; lmtp_deliver), or to any SMTP or LMTP server (send_blocking, which tests use as a
// client) -- reference/smtp's ClientSession either way. One result per recipient, as the server
// reported it.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "refsmtp/smtp/client_session.hpp"

namespace refsmtp::delivery {

// Where the peer listens.
struct Endpoint {
  std::string host = "127.0.0.1";  // a numeric address: no name lookups here
  std::uint16_t port = 24;
  std::string unix_path;           // when set, a Unix socket instead of TCP
};

struct LmtpOptions {
  std::string lhlo_name = "localhost";
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

struct SendOutcome {
  std::vector<smtp::RecipientResult> results;  // one per recipient, in order
  std::string error;                           // set when the connection failed
};

SendOutcome lmtp_deliver(const Endpoint& endpoint, const smtp::OutgoingMessage& message, const LmtpOptions& options);

// One message over one blocking connection, SMTP (or LMTP with config.lmtp). No TLS on this
// path: a STARTTLS the policy asks for fails the connection (use TlsPolicy::none).
SendOutcome send_blocking(const Endpoint& endpoint, const smtp::ClientConfig& config,
                         const smtp::OutgoingMessage& message, std::chrono::milliseconds connect_timeout);

}  // namespace refsmtp::delivery
