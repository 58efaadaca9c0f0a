#include "refsmtp/conform/runner.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

namespace refsmtp::conform {

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::skip: return "skip";
    case Outcome::error: return "error";
  }
  return "?";
}

std::map<std::string, std::string> default_profile() {
  return {{"domain", "example.test"}, {"rcpt", "postmaster@example.test"}, {"unknown", "no-such-user-9z@example.test"},
          {"sender", "conform@client.test"}, {"remote", "someone@remote.invalid"}, {"user", "conform"},
          {"password", "conform-password"}, {"helo", "client.test"}};
}

bool parse_profile(const std::string& text, const std::string& file, std::map<std::string, std::string>& out, std::string& error) {
  std::size_t lineno = 0, pos = 0;
  while (pos < text.size()) {
    ++lineno;
    const std::size_t lf = text.find('\n', pos);
    std::string line = text.substr(pos, lf == std::string::npos ? std::string::npos : lf - pos);
    pos = lf == std::string::npos ? text.size() : lf + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) {
      error = file + ":" + std::to_string(lineno) + ": expected name = value";
      return false;
    }
    auto trim = [](std::string s) {
      while (!s.empty() && s.front() == ' ') s.erase(0, 1);
      while (!s.empty() && s.back() == ' ') s.pop_back();
      return s;
    };
    out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return true;
}

namespace {

// The runner's own small connection and reply reader: it shares nothing with the server core
// it may be judging.
class Connection {
 public:
  ~Connection() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& error) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
      error = "cannot resolve " + host;
      return false;
    }
    fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    // No Nagle: each write leaves as its own segment, so SPLIT: really splits.
    const int one = 1;
    if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const bool ok = fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
    ::freeaddrinfo(res);
    if (!ok) error = std::string("connect: ") + std::strerror(errno);
    return ok;
  }
  void close() {
    if (ssl_) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool start_tls(std::string& error) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // conformance, not trust: any certificate
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) != 1) {
      error = "TLS handshake failed";
      return false;
    }
    buf_.clear();  // nothing read in the clear may be used after the handshake
    // Non-blocking from here: TLS 1.3 servers send records after the handshake (session
    // tickets) that make the socket readable without any application data, and a blocking
    // SSL_read would then wait for the server instead of honouring our deadline.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return true;
  }
  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ssl_ ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                             : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (!ssl_) return false;
        const int e = SSL_get_error(ssl_, static_cast<int>(n));
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return false;
        pollfd p{fd_, static_cast<short>(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
        if (::poll(&p, 1, 10000) <= 0) return false;
        continue;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads one reply. Returns lines; empty with closed=true at EOF; empty with timed_out=true.
  std::vector<std::string> read_reply(std::chrono::milliseconds timeout, bool& closed, bool& timed_out) {
    std::vector<std::string> lines;
    closed = timed_out = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const std::size_t lf = buf_.find('\n');
      if (lf != std::string::npos) {
        std::string line = buf_.substr(0, lf);
        buf_.erase(0, lf + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
        if (line.size() < 4 || line[3] != '-') return lines;
        continue;
      }
      if (buf_.size() > 65536) return lines;  // a runaway line: judged as malformed
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        return lines;
      }
      if (!ssl_ || SSL_pending(ssl_) == 0) {
        pollfd p{fd_, POLLIN, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
        if (rc == 0) {
          timed_out = true;
          return lines;
        }
      }
      char tmp[4096];
      const ssize_t n = ssl_ ? SSL_read(ssl_, tmp, sizeof tmp) : ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) {
        if (ssl_) {
          const int e = SSL_get_error(ssl_, static_cast<int>(n));
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;  // a record with no data yet
        }
        closed = true;
        return lines;
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buf_;
};

bool code_matches(const std::string& pattern, int code) {
  const std::string c = std::to_string(code);
  if (pattern[1] == 'x') return pattern[0] == c[0];
  return pattern == c;
}

bool enhanced_matches(const std::string& pattern, const std::string& text) {
  // The reply text starts with the status code, e.g. "5.1.1 No such user".
  const std::string got = text.substr(0, text.find(' '));
  std::size_t i = 0, j = 0;
  auto part = [](const std::string& s, std::size_t& k) {
    const std::size_t dot = s.find('.', k);
    std::string p = s.substr(k, dot == std::string::npos ? std::string::npos : dot - k);
    k = dot == std::string::npos ? s.size() : dot + 1;
    return p;
  };
  for (int n = 0; n < 3; ++n) {
    const std::string a = part(pattern, i), b = part(got, j);
    if (b.empty() || (a != "x" && a != b)) return false;
  }
  return j == got.size();
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// The AUTH helper variables, from the profile's user and password.
void add_auth_variables(std::map<std::string, std::string>& vars) {
  const std::string user = vars["user"], password = vars["password"], wrong = password + "-wrong";
  vars["auth_plain"] = base64(std::string("\0", 1) + user + std::string("\0", 1) + password);
  vars["auth_plain_wrong"] = base64(std::string("\0", 1) + user + std::string("\0", 1) + wrong);
  vars["user_b64"] = base64(user);
  vars["password_b64"] = base64(password);
  vars["password_wrong_b64"] = base64(wrong);
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (u < 32 || u == 127) out += "\\x" + std::string(1, "0123456789abcdef"[u >> 4]) + "0123456789abcdef"[u & 15];
    else out += c;
  }
  return s.size() > max ? out + "..." : out;
}

std::string describe(const Expect& e) {
  std::string s;
  for (std::size_t i = 0; i < e.codes.size(); ++i) s += (i ? " or " : "") + e.codes[i];
  if (!e.enhanced.empty()) s += " " + e.enhanced;
  if (!e.regex.empty()) s += " /" + e.regex + "/";
  return s;
}

}  // namespace

bool parse_endpoint(const std::string& text, Endpoint& out, std::string& error) {
  const std::size_t colon = text.rfind(':');
  char* end = nullptr;
  const long port = colon == std::string::npos ? -1 : std::strtol(text.c_str() + colon + 1, &end, 10);
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535 || end == text.c_str() + colon + 1 || *end != '\0') {
    error = "'" + text + "': expected HOST:PORT";
    return false;
  }
  out.host = text.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') out.host = out.host.substr(1, out.host.size() - 2);
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

std::string unavailable(const Script& script, const Target& target) {
  if (script.port == "submission" && target.submission.port == 0) return "needs a submission port (--submission HOST:PORT)";
  if (script.port == "submissions" && target.submissions.port == 0) return "needs an implicit-TLS port (--submissions HOST:PORT)";
  if (script.checks_delivery() && !target.delivery && !script.delivery_optional) return "checks delivery (give --maildir PATH or --sink HOST:PORT)";
  return "";
}

CaseResult run_case(const Script& script, const Target& target) {
  CaseResult r;
  r.script = &script;
  const auto t0 = std::chrono::steady_clock::now();
  auto finish = [&](Outcome o, std::string why) {
    r.outcome = o;
    r.reason = std::move(why);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  auto vars = target.profile;
  static std::atomic<unsigned> counter{0};
  vars["token"] = script.name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  add_auth_variables(vars);
  if (const std::string why = unavailable(script, target); !why.empty()) return finish(Outcome::skip, why);

  // Which port: the main target with its TLS mode, or a submission port.
  std::string host = target.host;
  std::uint16_t port = target.port;
  TlsMode tls = target.tls;
  if (script.port == "submission") {
    host = target.submission.host;
    port = target.submission.port;
    tls = TlsMode::none;
  } else if (script.port == "submissions") {
    host = target.submissions.host;
    port = target.submissions.port;
    tls = TlsMode::implicit;
  }
  Connection conn;
  std::string error;
  if (!conn.connect(host, port, target.step_timeout, error)) return finish(Outcome::error, error);
  if (tls == TlsMode::implicit && !conn.start_tls(error)) return finish(Outcome::error, error);
  std::size_t first_step = 0;
  if (tls == TlsMode::starttls) {
    bool closed = false, timed_out = false;
    auto greeting = conn.read_reply(target.step_timeout, closed, timed_out);
    if (greeting.empty() || !greeting.front().starts_with("220")) return finish(Outcome::error, "no 220 greeting before STARTTLS");
    conn.send("EHLO " + vars["helo"] + "\r\n");
    conn.read_reply(target.step_timeout, closed, timed_out);
    conn.send("STARTTLS\r\n");
    auto ready = conn.read_reply(target.step_timeout, closed, timed_out);
    if (ready.empty() || !ready.front().starts_with("220")) {
      return finish(Outcome::error, "STARTTLS refused: " + (ready.empty() ? std::string("no reply") : ready.front()));
    }
    if (!conn.start_tls(error)) return finish(Outcome::error, error);
    r.transcript += "-- greeting, EHLO and STARTTLS done; TLS --\n";
    // The case's opening greeting step stands for the greeting already read.
    if (!script.steps.empty() && script.steps.front().kind == Step::Kind::expect) first_step = 1;
  }

  std::chrono::milliseconds step_timeout = target.step_timeout;  // TIMEOUT: changes it
  std::vector<std::string> last;  // the last reply's lines
  std::string pending;            // C: lines waiting to go out in one write
  // Messages the server took responsibility for (2xx after the data of DATA or BDAT LAST): a
  // delivery check waits for at most that many, so a refused message costs no step timeout.
  std::size_t accepted = 0;
  bool end_of_data_next = false;  // the next reply answers the end of a message
  auto flush = [&]() -> bool {
    if (pending.empty()) return true;
    const bool ok = conn.send(pending);
    r.sent += pending;
    pending.clear();
    return ok;
  };
  // Waits until the delivered count for this case's token reaches `want` (at most the number
  // of messages the server accepted) or the step timeout passes, then for the settle time, so
  // a late extra message (smuggled, duplicated) is seen too.
  auto delivered = [&](std::size_t want) {
    want = std::min(want, accepted);
    const auto deadline = std::chrono::steady_clock::now() + step_timeout;
    auto found = target.delivery->find(vars["token"]);
    while (found.size() < want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      found = target.delivery->find(vars["token"]);
    }
    if (found.size() <= want) {
      std::this_thread::sleep_for(target.settle);
      found = target.delivery->find(vars["token"]);
    }
    return found;
  };
  for (std::size_t si = first_step; si < script.steps.size(); ++si) {
    const Step& st = script.steps[si];
    const std::string where = script.file + ":" + std::to_string(st.line) + ": ";
    if (st.kind == Step::Kind::delivered || st.kind == Step::Kind::body) {
      flush();  // what the case sent so far is what the delivery check judges
      if (!target.delivery) {  // "# delivery: optional" (unavailable() skipped the others)
        r.transcript += "-- delivery check not made (no --maildir or --sink) --\n";
        continue;
      }
    }
    switch (st.kind) {
      case Step::Kind::send: {
        std::string missing;
        const std::string line = substitute(st.text, vars, missing);
        if (!missing.empty()) return finish(Outcome::error, where + "profile has no '" + missing + "'");
        r.transcript += "C: " + line + "\n";
        pending += line + "\r\n";
        break;
      }
      case Step::Kind::raw: {
        std::string missing;
        const std::string bytes = substitute(st.text, vars, missing);
        if (!missing.empty()) return finish(Outcome::error, where + "profile has no '" + missing + "'");
        r.transcript += "C(raw): " + std::to_string(bytes.size()) + " octets\n";
        pending += bytes;
        break;
      }
      case Step::Kind::bdat: {
        std::string missing;
        const std::string bytes = substitute(st.text, vars, missing);
        if (!missing.empty()) return finish(Outcome::error, where + "profile has no '" + missing + "'");
        const std::string command = "BDAT " + std::to_string(bytes.size()) + (st.last ? " LAST" : "");
        r.transcript += "C: " + command + "\nC(chunk): " + std::to_string(bytes.size()) + " octets\n";
        pending += command + "\r\n" + bytes;
        if (st.last) end_of_data_next = true;
        break;
      }
      case Step::Kind::timeout:
        step_timeout = std::chrono::milliseconds(st.ms);
        break;
      case Step::Kind::close:
        flush();
        conn.close();
        r.transcript += "-- closed by the client --\n";
        break;
      case Step::Kind::sleep:
        if (!flush()) return finish(Outcome::fail, where + "the server closed the connection while we were sending");
        std::this_thread::sleep_for(std::chrono::milliseconds(st.ms));
        break;
      case Step::Kind::split: {
        const std::size_t n = static_cast<std::size_t>(st.ms);
        for (std::size_t off = 0; off < pending.size(); off += n) {
          if (off) std::this_thread::sleep_for(std::chrono::milliseconds(20));
          if (!conn.send(std::string_view(pending).substr(off, n))) {
            return finish(Outcome::fail, where + "the server closed the connection while we were sending");
          }
        }
        r.transcript += "-- sent " + std::to_string(pending.size()) + " octets in writes of " + std::to_string(n) + " --\n";
        r.sent += pending;
        pending.clear();
        break;
      }
      case Step::Kind::delivered: {
        const int most = *std::max_element(st.counts.begin(), st.counts.end());
        const auto found = delivered(static_cast<std::size_t>(most));
        r.transcript += "-- " + std::to_string(found.size()) + " message(s) with the token in the " + target.delivery->describe() + " --\n";
        if (std::find(st.counts.begin(), st.counts.end(), static_cast<int>(found.size())) == st.counts.end()) {
          std::string want;
          for (int c : st.counts) want += (want.empty() ? "" : " or ") + std::to_string(c);
          return finish(Outcome::fail, where + "expected " + want + " delivered message(s) with the case's token, found " +
                                           std::to_string(found.size()) +
                                           (static_cast<int>(found.size()) > most ? " (a smuggled or duplicated message?)" : ""));
        }
        break;
      }
      case Step::Kind::body: {
        const auto found = delivered(1);
        if (found.size() != 1) {
          return finish(Outcome::fail, where + "BODY: needs exactly one delivered message with the case's token, found " +
                                           std::to_string(found.size()));
        }
        std::string missing;
        const std::string want = normalize_newlines(substitute(st.text, vars, missing));
        if (!missing.empty()) return finish(Outcome::error, where + "profile has no '" + missing + "'");
        const std::string got = normalize_newlines(message_body(found.front()));
        if (got != want) {
          std::size_t at = 0;
          while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
          const std::size_t from = at > 20 ? at - 20 : 0;
          return finish(Outcome::fail, where + "delivered body differs at octet " + std::to_string(at) + " (of " +
                                           std::to_string(got.size()) + "; expected " + std::to_string(want.size()) + "): got \"" +
                                           printable(got.substr(from), 60) + "\", expected \"" + printable(want.substr(from), 60) + "\"");
        }
        r.transcript += "-- delivered body matches (" + std::to_string(got.size()) + " octets) --\n";
        break;
      }
      case Step::Kind::starttls:
        if (!flush() || !conn.start_tls(error)) return finish(Outcome::fail, where + "STARTTLS: " + error);
        r.transcript += "-- TLS --\n";
        break;
      case Step::Kind::cap:
      case Step::Kind::nocap: {
        bool found = false;
        for (std::size_t i = 1; i < last.size(); ++i) {
          std::string kw = last[i].size() > 4 ? last[i].substr(4) : "";
          kw = kw.substr(0, kw.find(' '));
          std::transform(kw.begin(), kw.end(), kw.begin(), [](unsigned char c) { return std::toupper(c); });
          if (kw == st.text) found = true;
        }
        if (found != (st.kind == Step::Kind::cap)) {
          return finish(Outcome::fail, where + (found ? "EHLO lists " : "EHLO does not list ") + st.text);
        }
        break;
      }
      case Step::Kind::expect: {
        if (!flush() && st.expect.kind != Expect::Kind::closed) {
          return finish(Outcome::fail, where + "the server closed the connection while we were sending");
        }
        const Expect& e = st.expect;
        bool closed = false, timed_out = false;
        const auto wait = e.kind == Expect::Kind::none ? std::chrono::milliseconds(e.silence_ms) : step_timeout;
        last = conn.read_reply(wait, closed, timed_out);
        for (const auto& l : last) r.transcript += "S: " + l + "\n";
        if (e.kind == Expect::Kind::none) {
          if (!last.empty()) return finish(Outcome::fail, where + "expected no reply, got: " + last.front());
          break;
        }
        if (e.kind == Expect::Kind::closed) {
          // A 421 may come first (RFC 5321 §3.8), then EOF.
          if (!last.empty() && last.front().starts_with("421")) last = conn.read_reply(step_timeout, closed, timed_out);
          if (!closed) return finish(Outcome::fail, where + "expected the server to close the connection" +
                                                        (last.empty() ? std::string() : ", got: " + last.front()));
          break;
        }
        if (last.empty()) {
          return finish(Outcome::fail, where + (closed ? "connection closed, expected "
                                                    : "no reply within the step timeout (" + std::to_string(step_timeout.count()) + " ms), expected ") +
                                           describe(e));
        }
        const std::string& first = last.front();
        // RFC 5321 §4.2: every line is the same three digits, then "-" (more follows) or SP/end.
        for (std::size_t k = 0; k < last.size(); ++k) {
          const std::string& l = last[k];
          const bool final_line = k + 1 == last.size();
          const bool ok = l.size() >= 3 && std::isdigit(static_cast<unsigned char>(l[0])) && l[0] >= '2' && l[0] <= '5' &&
                          std::isdigit(static_cast<unsigned char>(l[1])) && std::isdigit(static_cast<unsigned char>(l[2])) &&
                          l.compare(0, 3, first, 0, 3) == 0 &&
                          (final_line ? (l.size() == 3 || l[3] == ' ') : (l.size() > 3 && l[3] == '-'));
          if (!ok) {
            return finish(Outcome::fail, where + (final_line && l.size() > 3 && l[3] == '-' ? "incomplete multi-line reply: "
                                                                                             : "malformed reply line: ") +
                                             l.substr(0, 80));
          }
        }
        const int code = std::stoi(first.substr(0, 3));
        const std::string text = first.size() > 4 ? first.substr(4) : "";
        if (end_of_data_next && code < 300) ++accepted;
        end_of_data_next = code == 354;
        if (std::none_of(e.codes.begin(), e.codes.end(), [&](const std::string& p) { return code_matches(p, code); })) {
          return finish(Outcome::fail, where + "expected " + describe(e) + ", got: " + first);
        }
        if (!e.enhanced.empty() && !enhanced_matches(e.enhanced, text)) {
          return finish(Outcome::fail, where + "expected enhanced status " + e.enhanced + ", got: " + first);
        }
        if (!e.regex.empty()) {
          std::string all;
          for (const auto& l : last) all += l.substr(std::min<std::size_t>(4, l.size())) + "\n";
          if (!std::regex_search(all, std::regex(e.regex))) return finish(Outcome::fail, where + "reply does not match /" + e.regex + "/: " + first);
        }
        break;
      }
    }
  }
  flush();
  return finish(Outcome::pass, "");
}

namespace {

// Text for XML 1.0: markup escaped; control characters other than TAB and LF, and octets that
// are not well-formed UTF-8 (a server may echo anything), become '?', so the report always parses.
std::string xml(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
      bool ok = len > 0 && i + len <= s.size();
      for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (ok && len == 3) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
        ok = ok && !(c == 0xEF && c1 == 0xBF && (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xBE);  // U+FFFE/FFFF
      }
      if (ok && len == 4) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
      }
      if (!ok) {
        out += '?';
        continue;
      }
      out.append(s.substr(i, len));
      i += len - 1;
      continue;
    }
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += (c < 32 && c != '\n' && c != '\t') ? '?' : static_cast<char>(c);
    }
  }
  return out;
}

std::string rfc_of(const Script& s) {
  // "RFC 5321 §4.1.4" -> "RFC 5321"
  const std::size_t sec = s.rfc.find(" §");
  return sec == std::string::npos ? s.rfc : s.rfc.substr(0, sec);
}

}  // namespace

std::string report(const std::vector<CaseResult>& results, const std::string& format, const Target& target) {
  const std::string where = target.host + ":" + std::to_string(target.port);
  if (format == "json") {
    nlohmann::ordered_json j;
    j["target"] = where;
    j["cases"] = nlohmann::json::array();
    for (const auto& r : results) {
      j["cases"].push_back({{"case", r.script->name}, {"rfc", r.script->rfc}, {"level", level_name(r.script->level)},
                            {"title", r.script->title}, {"outcome", outcome_name(r.outcome)}, {"reason", r.reason},
                            {"file", r.script->file}, {"seconds", r.seconds}});
    }
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (format == "tap") {
    std::string out = "TAP version 13\n1.." + std::to_string(results.size()) + "\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      out += std::string(r.outcome == Outcome::fail || r.outcome == Outcome::error ? "not ok " : "ok ") + std::to_string(i + 1) +
             " - [" + std::string(level_name(r.script->level)) + "] " + r.script->rfc + " " + r.script->name;
      if (r.outcome == Outcome::skip) out += " # SKIP " + r.reason;
      out += "\n";
      if (r.outcome == Outcome::fail || r.outcome == Outcome::error) out += "  # " + r.reason + "\n";
    }
    return out;
  }
  if (format == "junit") {
    std::map<std::string, std::vector<const CaseResult*>> by_rfc;
    for (const auto& r : results) by_rfc[rfc_of(*r.script)].push_back(&r);
    int all_failures = 0, all_errors = 0, all_skipped = 0;
    double all_time = 0;
    std::string suites;
    for (const auto& [rfc, rs] : by_rfc) {
      int failures = 0, errors = 0, skipped = 0;
      double time = 0;
      for (const auto* r : rs) {
        failures += r->outcome == Outcome::fail;
        errors += r->outcome == Outcome::error;
        skipped += r->outcome == Outcome::skip;
        time += r->seconds;
      }
      all_failures += failures;
      all_errors += errors;
      all_skipped += skipped;
      all_time += time;
      std::string& out = suites;
      out += "  <testsuite name=\"" + xml(rfc) + "\" tests=\"" + std::to_string(rs.size()) + "\" failures=\"" +
             std::to_string(failures) + "\" errors=\"" + std::to_string(errors) + "\" skipped=\"" + std::to_string(skipped) +
             "\" time=\"" + std::to_string(time) + "\">\n";
      for (const auto* r : rs) {
        out += "    <testcase classname=\"" + xml(r->script->rfc) + "\" name=\"" + xml(std::string(level_name(r->script->level)) + " " + r->script->name) +
               "\" file=\"" + xml(r->script->file) + "\" time=\"" + std::to_string(r->seconds) + "\"";
        if (r->outcome == Outcome::pass) {
          out += "/>\n";
          continue;
        }
        out += ">\n";
        if (r->outcome == Outcome::skip) out += "      <skipped message=\"" + xml(r->reason) + "\"/>\n";
        if (r->outcome == Outcome::fail) out += "      <failure message=\"" + xml(r->reason) + "\">" + xml(r->script->title) + "</failure>\n";
        if (r->outcome == Outcome::error) out += "      <error message=\"" + xml(r->reason) + "\"/>\n";
        if (r->outcome != Outcome::skip) out += "      <system-out>" + xml(r->transcript) + "</system-out>\n";
        out += "    </testcase>\n";
      }
      out += "  </testsuite>\n";
    }
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"smtpconform " + xml(where) + "\" tests=\"" +
           std::to_string(results.size()) + "\" failures=\"" + std::to_string(all_failures) + "\" errors=\"" + std::to_string(all_errors) +
           "\" skipped=\"" + std::to_string(all_skipped) + "\" time=\"" + std::to_string(all_time) + "\">\n" + suites + "</testsuites>\n";
  }
  // text: per RFC, "N of M MUST cases passed", then the failures with their transcripts.
  std::map<std::string, std::map<Level, std::pair<int, int>>> tally;
  for (const auto& r : results) {
    if (r.outcome == Outcome::skip) continue;
    auto& t = tally[rfc_of(*r.script)][r.script->level];
    t.second++;
    if (r.outcome == Outcome::pass) t.first++;
  }
  std::string out = "smtpconform against " + where + "\n\n";
  for (const auto& [rfc, levels] : tally) {
    out += rfc + ":";
    for (const auto& [level, t] : levels) {
      out += "  " + std::to_string(t.first) + " of " + std::to_string(t.second) + " " + std::string(level_name(level));
    }
    out += "\n";
  }
  int skipped = 0;
  for (const auto& r : results) skipped += r.outcome == Outcome::skip;
  if (skipped) out += "(" + std::to_string(skipped) + " skipped)\n";
  for (const auto& r : results) {
    if (r.outcome != Outcome::fail && r.outcome != Outcome::error) continue;
    out += "\n" + std::string(r.outcome == Outcome::fail ? "FAIL" : "ERROR") + " [" + std::string(level_name(r.script->level)) + "] " +
           r.script->name + " (" + r.script->rfc + "): " + r.script->title + "\n  " + r.reason + "\n";
    std::string t = r.transcript;
    std::size_t pos = 0;
    while ((pos = t.find('\n', pos)) != std::string::npos && pos + 1 < t.size()) t.insert(++pos, "    ");
    out += "    " + t;
  }
  return out;
}

}  // namespace refsmtp::conform
