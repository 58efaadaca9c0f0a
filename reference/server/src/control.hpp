#pragma once
// The queue's control channel: a Unix socket in the spool directory (mode 0600, so only the
// service user and root reach it) that `refsmtpd queue ...` talks to while the daemon runs. One
// request line per connection, then the reply and close:
//   list | show ID | flush [ID] | hold ID | release ID | delete ID
// The reply's first line is "ok" or "error: why"; list and show follow it with their lines.
// Requests and replies are plain text, so `socat - UNIX:spool/control` works too.
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "refsmtp/queue/queue.hpp"

namespace refsmtp::server {

// The answer to one request (list/show lines after the first). `busy(id)`: the message has
// deliveries in flight, so it may not be held or deleted now. Not thread-safe against delivery:
// the caller runs it where no delivery pass runs (DeliveryLoop::control), or on a stopped spool.
std::string control_request(queue::Queue& queue, const std::string& line, std::int64_t now_ms,
                            const std::function<bool(const std::string& id)>& busy);

class ControlSocket {
 public:
  // Hands each request line to `handle`, which answers (on any thread) through its callback.
  using Handler = std::function<void(std::string line, std::function<void(std::string reply)> reply)>;
  ControlSocket(boost::asio::io_context& io, const EventLog& log, Handler handle);
  ~ControlSocket();
  // Binds `path` (a stale socket file there is replaced); false with `error` set.
  bool open(const std::string& path, std::string& error);
  void close();

 private:
  void accept();
  boost::asio::io_context& io_;
  const EventLog& log_;
  Handler handle_;
  std::string path_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
};

}  // namespace refsmtp::server
