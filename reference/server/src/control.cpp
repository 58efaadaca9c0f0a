#include "control.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <sstream>

#include "refsmtp/queue/dsn.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace {

const char* state_word(queue::RecipientState s) {
  return s == queue::RecipientState::delivered ? "delivered" : s == queue::RecipientState::failed ? "failed" : "pending";
}

// "ID  ARRIVAL  SIZE  FROM  PENDING/ALL  NEXT-ATTEMPT|held"
std::string summary(const queue::StoredEnvelope& e) {
  std::size_t pending = 0;
  for (const auto& r : e.recipients) pending += r.state == queue::RecipientState::pending;
  return e.id + " " + queue::iso8601_utc(e.arrival_ms) + " " + std::to_string(e.body_size) + " " + e.reverse_path.to_string() + " " +
         std::to_string(pending) + "/" + std::to_string(e.recipients.size()) + " " +
         (e.held ? std::string("held") : queue::iso8601_utc(e.next_attempt_ms));
}

std::string details(const queue::StoredEnvelope& e) {
  std::string out = "id " + e.id + "\narrival " + queue::iso8601_utc(e.arrival_ms) + "\nclient " + e.helo + " [" + e.client_address +
                    "]\nfrom " + e.reverse_path.to_string() + "\nsize " + std::to_string(e.body_size) + "\nattempts " +
                    std::to_string(e.attempts) + "\nnext " + (e.held ? std::string("held") : queue::iso8601_utc(e.next_attempt_ms)) + "\n";
  for (const auto& r : e.recipients) {
    out += "rcpt " + r.path.to_string() + " " + state_word(r.state) + (r.last_reply.empty() ? "" : " " + r.last_reply) + "\n";
  }
  return out;
}

}  // namespace

std::string control_request(queue::Queue& q, const std::string& line, std::int64_t now_ms,
                            const std::function<bool(const std::string& id)>& busy) {
  std::istringstream in(line);
  std::string verb, id, extra;
  in >> verb >> id >> extra;
  auto reply_for = [](std::error_code err, const std::string& id_) {
    if (!err) return std::string("ok\n");
    if (err == std::errc::no_such_file_or_directory) return "error: no message " + id_ + " in the queue\n";
    return "error: " + err.message() + "\n";
  };
  if (!extra.empty()) return "error: too many arguments\n";
  if (verb == "list" && id.empty()) {
    std::string out = "ok\n";
    for (const auto& e : q.snapshot()) out += summary(e) + "\n";
    return out;
  }
  if (verb == "show" && !id.empty()) {
    for (const auto& e : q.snapshot()) {
      if (e.id == id) return "ok\n" + details(e);
    }
    return "error: no message " + id + " in the queue\n";
  }
  if (verb == "flush") {
    const auto err = q.flush(id, now_ms);
    if (err == std::errc::operation_not_permitted) return "error: " + id + " is on hold (release it)\n";
    return reply_for(err, id);
  }
  if ((verb == "hold" || verb == "delete") && !id.empty() && busy(id)) {
    return "error: " + id + " is being relayed right now; try again in a moment\n";
  }
  if (verb == "hold" && !id.empty()) return reply_for(q.hold(id, true, now_ms), id);
  if (verb == "release" && !id.empty()) return reply_for(q.hold(id, false, now_ms), id);
  if (verb == "delete" && !id.empty()) return reply_for(q.remove(id), id);
  return "error: unknown request '" + line + "' (list, show ID, flush [ID], hold ID, release ID, delete ID)\n";
}

ControlSocket::ControlSocket(asio::io_context& io, const EventLog& log, Handler handle)
    : io_(io), log_(log), handle_(std::move(handle)) {}

ControlSocket::~ControlSocket() { close(); }

bool ControlSocket::open(const std::string& path, std::string& error) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      error = "the control socket " + path + " exists and is not a socket";
      return false;
    }
    ::unlink(path.c_str());  // left by a daemon that died: the spool lock says none runs now
  }
  boost::system::error_code ec;
  acceptor_ = std::make_unique<stream_protocol::acceptor>(io_);
  acceptor_->open(stream_protocol(), ec);
  const mode_t old = ::umask(0177);  // the socket is born 0600
  if (!ec) acceptor_->bind(stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (!ec) acceptor_->listen(16, ec);
  if (ec) {
    error = "cannot open the control socket " + path + ": " + ec.message();
    acceptor_.reset();
    return false;
  }
  path_ = path;
  accept();
  return true;
}

void ControlSocket::close() {
  if (!acceptor_) return;
  boost::system::error_code ec;
  acceptor_->close(ec);
  acceptor_.reset();
  ::unlink(path_.c_str());
}

void ControlSocket::accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
    if (ec) return;  // closed
    auto sock = std::make_shared<stream_protocol::socket>(std::move(socket));
    auto buf = std::make_shared<asio::streambuf>(4096);  // a request is one short line
    asio::async_read_until(*sock, *buf, '\n', [this, sock, buf](boost::system::error_code rec, std::size_t n) {
      auto send = [sock](std::string reply) {
        auto out = std::make_shared<std::string>(std::move(reply));
        // Back on the socket's executor, whichever thread answered.
        asio::post(sock->get_executor(), [sock, out] {
          asio::async_write(*sock, asio::buffer(*out), [sock, out](boost::system::error_code, std::size_t) {});
        });
      };
      if (rec) {
        send("error: a request is one line of at most 4096 octets\n");
        return;
      }
      std::string line(asio::buffers_begin(buf->data()), asio::buffers_begin(buf->data()) + static_cast<std::ptrdiff_t>(n - 1));
      if (!line.empty() && line.back() == '\r') line.pop_back();  // socat and friends may send CRLF
      handle_(line, [this, line, send](std::string reply) {
        log_.write("control", {{"request", line}, {"result", reply.substr(0, reply.find('\n'))}});
        send(std::move(reply));
      });
    });
    accept();
  });
}

}  // namespace refsmtp::server
