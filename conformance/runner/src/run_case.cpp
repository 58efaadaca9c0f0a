// The step loop: runs one case against a target and gives its verdict.
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <regex>
#include <thread>

#include "matchers.hpp"
#include "refsmtp/conform/runner.hpp"

namespace refsmtp::conform {

using namespace detail;

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::deviation: return "deviation";
    case Outcome::inconclusive: return "inconclusive";
    case Outcome::skip: return "skip";
    case Outcome::error: return "error";
  }
  return "?";
}

std::optional<Outcome> parse_outcome(std::string_view name) {
  for (Outcome o : {Outcome::pass, Outcome::fail, Outcome::deviation, Outcome::inconclusive, Outcome::skip, Outcome::error}) {
    if (outcome_name(o) == name) return o;
  }
  return std::nullopt;
}

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
  if (script.delivery_final && (!target.delivery || !target.delivery->final_delivery())) {
    return "checks final delivery (give --maildir PATH: a --sink sees what the server relays, not what it delivers)";
  }
  const bool idles = std::any_of(script.steps.begin(), script.steps.end(), [](const Step& st) { return st.kind == Step::Kind::idle; });
  if (idles && !target.profile.count("command_timeout")) return "waits out the command timeout (give command_timeout = SECONDS in the profile)";
  for (const auto& flag : script.needs_profile) {
    const auto it = target.profile.find(flag);
    if (it == target.profile.end() || it->second != "yes") {
      return "needs " + flag + " = yes in the profile (the server would relay mail for ${remote} to the --sink)";
    }
  }
  for (const auto& flag : script.skip_when) {
    const auto it = target.profile.find(flag);
    if (it != target.profile.end() && it->second == "yes") {
      return "the profile says " + flag + " = yes: " +
             (flag == "accept_all" ? "the server takes every recipient" : "the server trusts this client (it may relay and submit without AUTH)") +
             ", so a refusal cannot be judged";
    }
  }
  return "";
}

namespace {

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
  const std::string nul(1, '\0');
  vars["auth_plain"] = base64(nul + user + nul + password);
  vars["auth_plain_wrong"] = base64(nul + user + nul + wrong);
  // RFC 4616 §2: an authorization identity other than the authentication identity.
  vars["auth_plain_authzid"] = base64(user + "-other" + nul + user + nul + password);
  vars["user_b64"] = base64(user);
  // The delivery mailbox with its domain in upper case (RFC 5321 §2.4: domains are not case
  // sensitive).
  std::string upper_domain = vars["deliver_rcpt"];
  for (std::size_t i = upper_domain.rfind('@') == std::string::npos ? upper_domain.size() : upper_domain.rfind('@');
       i < upper_domain.size(); ++i) {
    upper_domain[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper_domain[i])));
  }
  vars["deliver_rcpt_upper_domain"] = upper_domain;
  vars["password_b64"] = base64(password);
  vars["password_wrong_b64"] = base64(wrong);
}

// Filler message data: lines of 76 octets and CRLF, `octets` in all (rounded up to whole lines).
std::string filler(std::size_t octets) {
  std::string out;
  out.reserve(octets + 78);
  while (out.size() < octets) out += std::string(76, 'x') + "\r\n";
  return out;
}

bool allows_421(const Expect& e) {
  return std::any_of(e.codes.begin(), e.codes.end(), [](const std::string& p) { return code_matches(p, 421); });
}

}  // namespace

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
  // Unique across runs too (a persistent --maildir keeps old messages; PIDs repeat in fresh CI
  // containers): a random part of fixed length, so no token is a prefix of another.
  static const std::string run_id = [] {
    std::random_device rd;
    char hex[13];
    std::snprintf(hex, sizeof hex, "%06x%06x", rd() & 0xffffffu, rd() & 0xffffffu);
    return std::string(hex);
  }();
  char serial[9];
  std::snprintf(serial, sizeof serial, "%08u", counter++);
  vars["token"] = script.name + "-" + run_id + "-" + serial;
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
  std::string error;
  std::unique_ptr<Transport> conn =
      target.connector ? target.connector(host, port, target.step_timeout, error) : connect_tcp(host, port, target.step_timeout, error);
  if (!conn) return finish(Outcome::error, "cannot connect to " + host + ":" + std::to_string(port) + ": " + error);
  if (tls == TlsMode::implicit && !conn->start_tls(error)) return finish(Outcome::error, error);
  // With --tls starttls the greeting is read before the handshake; the case's first S: step
  // then judges it as if it came now (the reader hands it out first).
  std::optional<ReadResult> greeting_read;
  if (tls == TlsMode::starttls) {
    const auto greeting = conn->read_reply(target.step_timeout);
    if (greeting.lines.empty() || !greeting.lines.front().starts_with("220")) return finish(Outcome::error, "no 220 greeting before STARTTLS");
    conn->send("EHLO " + vars["helo"] + "\r\n");
    conn->read_reply(target.step_timeout);
    conn->send("STARTTLS\r\n");
    const auto ready = conn->read_reply(target.step_timeout);
    if (ready.lines.empty() || !ready.lines.front().starts_with("220")) {
      return finish(Outcome::error, "STARTTLS refused: " + (ready.lines.empty() ? std::string("no reply") : ready.lines.front()));
    }
    if (!conn->start_tls(error)) return finish(Outcome::error, error);
    r.transcript += "-- greeting read, then EHLO and STARTTLS; TLS --\n";
    greeting_read = greeting;
  }

  const std::size_t judged_end = script.assertions_end();
  std::chrono::milliseconds step_timeout = target.step_timeout;  // TIMEOUT: changes it
  std::chrono::milliseconds slowest{0};  // the longest a reply took in this case (scales silences)
  std::vector<std::string> last;         // the last reply's lines
  std::vector<std::string> last_ehlo;    // the last multi-line 250 (an EHLO reply)
  std::string pending;                   // C: lines waiting to go out in one write
  // Messages the server took responsibility for (2xx after the data of DATA or BDAT LAST): a
  // delivery check waits for at most that many, so a refused message costs no step timeout.
  std::size_t accepted = 0;
  bool end_of_data_next = false;  // the next reply answers the end of a message
  auto flush = [&]() -> bool {
    if (pending.empty()) return true;
    const bool ok = conn->send(pending);
    r.sent += pending;
    pending.clear();
    return ok;
  };
  // Reads one reply, records it, and keeps the counts the delivery checks use.
  auto read = [&](std::chrono::milliseconds wait) {
    const auto start = std::chrono::steady_clock::now();
    ReadResult got = greeting_read ? *greeting_read : conn->read_reply(wait);
    greeting_read.reset();
    for (const auto& l : got.lines) r.transcript += "S: " + printable(l, 500) + "\n";
    if (!got.lines.empty()) {
      slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start));
      last = got.lines;
      if (got.lines.size() > 1 && got.lines.front().starts_with("250")) last_ehlo = got.lines;
      if (malformed(got.lines).empty()) {
        const int code = std::stoi(got.lines.front().substr(0, 3));
        if (end_of_data_next && code < 300) ++accepted;
        end_of_data_next = code == 354;
      }
    }
    return got;
  };
  // A silence is judged over at least three times the slowest reply so far, so a slow server's
  // late answer is not taken for silence.
  auto silence_window = [&](int ms) { return std::min(step_timeout, std::max(std::chrono::milliseconds(ms), 3 * slowest)); };
  // The messages with this case's token; with `address`, only those delivered to it
  // (std::nullopt: the store cannot tell recipients apart, and says why in not_per_recipient).
  std::string not_per_recipient;
  auto find = [&](const std::string& address) -> std::optional<std::vector<std::string>> {
    if (address.empty()) return target.delivery->find(vars["token"]);
    return target.delivery->find_for(vars["token"], address, not_per_recipient);
  };
  // Waits until the delivered count reaches `want` (at most the number of messages the server
  // accepted) or the step timeout passes, then for the settle time, so a late extra message
  // (smuggled, duplicated) is seen too.
  auto delivered = [&](std::size_t want, const std::string& address = "") -> std::optional<std::vector<std::string>> {
    want = std::min(want, accepted);
    const auto deadline = std::chrono::steady_clock::now() + step_timeout;
    auto found = find(address);
    while (found && found->size() < want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      found = find(address);
    }
    if (found && found->size() <= want) {
      std::this_thread::sleep_for(target.settle);
      found = find(address);
    }
    return found;
  };

  for (std::size_t si = 0; si < script.steps.size(); ++si) {
    const Step& st = script.steps[si];
    const std::string where = script.file + ":" + std::to_string(st.line) + ": ";
    // A step that did not go as written: the verdict depends on what the step was for.
    auto not_as_written = [&](const std::string& why) {
      if (st.asserts) return finish(script.level == Level::note ? Outcome::deviation : Outcome::fail, where + why);
      if (si >= judged_end) {
        r.transcript += "-- teardown did not go as written (not judged): " + why + " --\n";
        return finish(Outcome::pass, "");
      }
      return finish(Outcome::inconclusive, where + "setup did not go as the case needs, so the rule was not tested: " + why);
    };
    auto ended_with_421 = [&](const std::string& line) {
      return finish(Outcome::inconclusive, where + "the server ended the session with 421 (RFC 5321 §3.8), so the rule was not tested: " +
                                               printable(line, 200));
    };
    std::string missing;
    auto substituted = [&](const std::string& text, bool for_regex = false) { return substitute(text, vars, missing, for_regex); };
    auto no_variable = [&] { return finish(Outcome::error, where + "the profile has no '" + missing + "'"); };
    // The pattern of this step with the profile's values in it; an error outcome when it has a
    // variable the profile lacks or stops being a regex.
    auto step_regex = [&](const std::string& pattern, std::string& regex) -> std::optional<CaseResult> {
      regex = substituted(pattern, true);
      if (!missing.empty()) return no_variable();
      if (std::string why; !regex.empty() && !search(regex, "", why)) return finish(Outcome::error, where + why);
      return std::nullopt;
    };
    // Judges one reply against the step's expectation: malformed, a 421 the step does not
    // allow, or a mismatch; nothing when it is as written.
    auto judge = [&](const Expect& e, const std::string& regex, const std::vector<std::string>& lines) -> std::optional<CaseResult> {
      if (const std::string bad = malformed(lines); !bad.empty()) return not_as_written(bad);
      if (const std::string why = mismatch(e, regex, lines); !why.empty()) {
        if (lines.front().starts_with("421") && !allows_421(e)) return ended_with_421(lines.front());
        return not_as_written(why);
      }
      return std::nullopt;
    };
    if (st.kind == Step::Kind::delivered || st.kind == Step::Kind::body || st.kind == Step::Kind::header ||
        st.kind == Step::Kind::noheader) {
      flush();  // what the case sent so far is what the delivery check judges
      if (!target.delivery) {  // "# delivery: optional" (unavailable() skipped the others)
        r.transcript += "-- delivery check not made (no --maildir or --sink) --\n";
        continue;
      }
    }
    switch (st.kind) {
      case Step::Kind::send: {
        const std::string line = substituted(st.text);
        if (!missing.empty()) return no_variable();
        r.transcript += "C: " + printable(line, 500) + "\n";
        pending += line + "\r\n";
        break;
      }
      case Step::Kind::raw: {
        const std::string bytes = substituted(st.text);
        if (!missing.empty()) return no_variable();
        r.transcript += "C(raw): " + printable(bytes, 400) + "\n";
        pending += bytes;
        break;
      }
      case Step::Kind::fill:
      case Step::Kind::bdat: {
        std::size_t octets = st.fill_octets;
        if (st.fill_over_size) {
          // The fixed maximum the server announced (RFC 1870 §3: "SIZE" SP number; 0 = none).
          const auto params = ehlo_params(last_ehlo, "SIZE");
          const unsigned long long limit =
              params.empty() || params.front().size() > 12 || params.front().find_first_not_of("0123456789") != std::string::npos
                  ? 0
                  : std::stoull(params.front());
          if (limit == 0) return not_as_written("FILL: SIZE+N needs the EHLO reply to give a fixed SIZE limit; it gives none");
          if (limit > 64ull * 1024 * 1024) {
            return not_as_written("the SIZE limit " + std::to_string(limit) + " is above the 64 MiB this runner sends to exceed it");
          }
          // A server may count each CRLF as one octet (OpenSMTPD and Exim count LF-terminated
          // lines): one more octet per 77 keeps even that count over the limit.
          octets += static_cast<std::size_t>(limit + limit / 77 + 1);
        }
        if (st.kind == Step::Kind::fill) {
          const std::string bytes = filler(octets);
          r.transcript += "C(fill): " + std::to_string(bytes.size()) + " octets of filler lines\n";
          pending += bytes;
          break;
        }
        const std::string bytes = st.fill ? filler(octets) : substituted(st.text);
        if (!missing.empty()) return no_variable();
        const std::string command = "BDAT " + std::to_string(bytes.size()) + (st.last ? " LAST" : "");
        r.transcript += "C: " + command + "\n" +
                        (st.fill ? "C(chunk): " + std::to_string(bytes.size()) + " octets of filler lines\n" : "C(chunk): " + printable(bytes, 400) + "\n");
        pending += command + "\r\n" + bytes;
        if (st.last) end_of_data_next = true;
        break;
      }
      case Step::Kind::timeout:
        step_timeout = std::chrono::milliseconds(st.ms);
        break;
      case Step::Kind::close:
        flush();
        conn->close();
        r.transcript += "-- closed by the client --\n";
        break;
      case Step::Kind::sleep:
        if (!flush()) return not_as_written("the server closed the connection while we were sending");
        std::this_thread::sleep_for(std::chrono::milliseconds(st.ms));
        break;
      case Step::Kind::idle: {
        if (!flush()) return not_as_written("the server closed the connection while we were sending");
        const auto wait = std::chrono::seconds(std::stoi(vars["command_timeout"]) + 2);
        r.transcript += "-- idle for " + std::to_string(wait.count()) + " s (the command timeout and 2 s) --\n";
        std::this_thread::sleep_for(wait);
        break;
      }
      case Step::Kind::split: {
        const std::size_t n = static_cast<std::size_t>(st.ms);
        for (std::size_t off = 0; off < pending.size(); off += n) {
          if (off) std::this_thread::sleep_for(std::chrono::milliseconds(20));
          if (!conn->send(std::string_view(pending).substr(off, n))) {
            return not_as_written("the server closed the connection while we were sending");
          }
        }
        r.transcript += "-- sent " + std::to_string(pending.size()) + " octets in writes of " + std::to_string(n) + " --\n";
        r.sent += pending;
        pending.clear();
        break;
      }
      case Step::Kind::delivered: {
        const int most = *std::max_element(st.counts.begin(), st.counts.end());
        const std::string address = substituted(st.text);
        if (!missing.empty()) return no_variable();
        const auto maybe = delivered(static_cast<std::size_t>(most), address);
        if (!maybe) return finish(Outcome::inconclusive, where + "cannot check delivery per recipient: " + not_per_recipient);
        const auto& found = *maybe;
        r.transcript += "-- " + std::to_string(found.size()) + " message(s) with the token " +
                        (address.empty() ? "" : "delivered to " + address + " ") + "in the " + target.delivery->describe() + " --\n";
        const bool count_ok = st.at_least ? static_cast<int>(found.size()) >= most
                                          : std::find(st.counts.begin(), st.counts.end(), static_cast<int>(found.size())) != st.counts.end();
        if (!count_ok) {
          std::string want = st.at_least ? "at least " : "";
          for (int c : st.counts) want += (want.empty() || st.at_least ? "" : " or ") + std::to_string(c);
          return not_as_written("expected " + want + " delivered message(s) with the case's token" + (address.empty() ? "" : " for " + address) +
                                ", found " + std::to_string(found.size()) +
                                (!st.at_least && static_cast<int>(found.size()) > most ? " (a smuggled or duplicated message?)" : ""));
        }
        break;
      }
      case Step::Kind::body:
      case Step::Kind::header:
      case Step::Kind::noheader: {
        const auto found = *delivered(1);
        const std::string step_name = st.kind == Step::Kind::body ? "BODY:" : st.kind == Step::Kind::header ? "HEADER:" : "NOHEADER:";
        if (found.size() != 1) {
          return not_as_written(step_name + " needs exactly one delivered message with the case's token, found " + std::to_string(found.size()));
        }
        if (st.kind != Step::Kind::body) {
          std::string pattern;
          if (auto bad = step_regex(st.regex, pattern)) return *bad;
          const auto fields = header_fields(found.front(), st.text);
          // Any field of that name matches when there is no pattern; step_regex compiled it.
          std::string unused;
          const bool ok = std::any_of(fields.begin(), fields.end(),
                                      [&](const std::string& v) { return pattern.empty() || search(pattern, v, unused).value_or(false); });
          std::string seen;
          for (const auto& v : fields) seen += "\n    " + st.text + ": " + printable(v, 200);
          r.transcript += "-- delivered message has " + std::to_string(fields.size()) + " " + st.text + " field(s)" + seen + " --\n";
          if (st.kind == Step::Kind::noheader && ok) {
            return not_as_written("the delivered message has a " + st.text + " field" + (st.regex.empty() ? "" : " matching /" + st.regex + "/"));
          }
          if (st.kind == Step::Kind::header && !ok) {
            return not_as_written(fields.empty() ? "the delivered message has no " + st.text + " header field"
                                                 : "no " + st.text + " field of the delivered message matches /" + st.regex + "/");
          }
          break;
        }
        const std::string want = normalize_newlines(substituted(st.text));
        if (!missing.empty()) return no_variable();
        const std::string got = normalize_newlines(message_body(found.front()));
        if (got != want) {
          std::size_t at = 0;
          while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
          const std::size_t from = at > 20 ? at - 20 : 0;
          return not_as_written("delivered body differs at octet " + std::to_string(at) + " (of " + std::to_string(got.size()) +
                                "; expected " + std::to_string(want.size()) + "): got \"" + printable(got.substr(from), 60) +
                                "\", expected \"" + printable(want.substr(from), 60) + "\"");
        }
        r.transcript += "-- delivered body matches (" + std::to_string(got.size()) + " octets) --\n";
        break;
      }
      case Step::Kind::starttls:
        if (!flush() || !conn->start_tls(error)) return not_as_written("STARTTLS: " + (error.empty() ? "the connection is gone" : error));
        r.transcript += "-- TLS --\n";
        break;
      case Step::Kind::cap:
      case Step::Kind::nocap: {
        const auto keywords = ehlo_keywords(last);
        const bool found = std::find(keywords.begin(), keywords.end(), st.text) != keywords.end();
        if (found != (st.kind == Step::Kind::cap)) return not_as_written((found ? "EHLO lists " : "EHLO does not list ") + st.text);
        break;
      }
      case Step::Kind::auth: {
        // A mechanism the server offered: the profile's choice, else PLAIN, else LOGIN.
        const auto offered = ehlo_params(last_ehlo, "AUTH");
        std::string mechanism = vars.count("auth_mechanism") ? vars["auth_mechanism"] : "";
        if (mechanism.empty()) {
          for (const char* m : {"PLAIN", "LOGIN"}) {
            if (mechanism.empty() && std::find(offered.begin(), offered.end(), m) != offered.end()) mechanism = m;
          }
        }
        if (mechanism.empty()) {
          return finish(Outcome::inconclusive, where + "the server offered no AUTH mechanism the runner speaks (PLAIN, LOGIN)" +
                                                   (last_ehlo.empty() ? " (no EHLO reply seen)" : ""));
        }
        std::vector<std::string> exchange;
        if (mechanism == "PLAIN") exchange = {"AUTH PLAIN " + vars[st.last ? "auth_plain_wrong" : "auth_plain"]};
        else exchange = {"AUTH LOGIN", vars["user_b64"], vars[st.last ? "password_wrong_b64" : "password_b64"]};
        ReadResult got;
        for (std::size_t k = 0; k < exchange.size(); ++k) {
          r.transcript += "C: " + exchange[k] + "\n";
          pending += exchange[k] + "\r\n";
          if (!flush()) return not_as_written("the server closed the connection while we were sending");
          got = read(step_timeout);
          if (got.lines.empty()) return not_as_written(got.closed ? "connection closed during AUTH" : "no reply to AUTH within the step timeout");
          if (const std::string bad = malformed(got.lines); !bad.empty()) return not_as_written(bad);
          if (!got.lines.front().starts_with("334")) break;
        }
        const std::string& final_line = got.lines.front();
        if (final_line.starts_with("421")) return ended_with_421(final_line);
        const bool ok = st.last ? final_line[0] == '5' : final_line.starts_with("235");
        if (!ok) return not_as_written(std::string("expected ") + (st.last ? "a 5xx to AUTH with a wrong password" : "235 to AUTH") + ", got: " + printable(final_line, 200));
        break;
      }
      case Step::Kind::expect_all: {
        if (!flush()) return not_as_written("the server closed the connection while we were sending");
        std::string regex;
        if (auto bad = step_regex(st.expect.regex, regex)) return *bad;
        const auto window = silence_window(1000);
        for (int n = 0; n < 1000; ++n) {  // a server that never falls silent is cut off, not waited for
          const ReadResult got = read(window);
          if (got.lines.empty()) {
            r.transcript += got.closed ? "-- closed by the server --\n" : "-- silent for " + std::to_string(window.count()) + " ms --\n";
            break;
          }
          if (auto verdict = judge(st.expect, regex, got.lines)) return *verdict;
        }
        break;
      }
      case Step::Kind::expect: {
        if (!flush() && st.expect.kind != Expect::Kind::closed && !st.expect.or_closed) {
          return not_as_written("the server closed the connection while we were sending");
        }
        const Expect& e = st.expect;
        const auto wait = e.kind == Expect::Kind::none ? silence_window(e.silence_ms) : step_timeout;
        ReadResult got = read(wait);
        if (e.kind == Expect::Kind::none) {
          if (!got.lines.empty() && got.lines.front().starts_with("421")) return ended_with_421(got.lines.front());
          if (!got.lines.empty()) return not_as_written("expected no reply within " + std::to_string(wait.count()) + " ms, got: " + printable(got.lines.front(), 200));
          r.transcript += got.closed ? "-- closed by the server --\n" : "-- silent for " + std::to_string(wait.count()) + " ms --\n";
          break;
        }
        if (e.kind == Expect::Kind::closed || (e.or_closed && got.closed)) {
          // A 421 may come first (RFC 5321 §3.8), then EOF.
          if (!got.lines.empty() && got.lines.front().starts_with("421")) got = read(step_timeout);
          if (got.closed && got.lines.empty()) {
            r.transcript += "-- closed by the server --\n";
            break;
          }
          if (e.kind == Expect::Kind::closed) {
            return not_as_written("expected the server to close the connection" +
                                  (got.lines.empty() ? std::string(" within ") + std::to_string(step_timeout.count()) + " ms" : ", got: " + printable(got.lines.front(), 200)));
          }
        }
        if (got.lines.empty()) {
          return not_as_written((got.closed ? "connection closed, expected " : "no reply within the step timeout (" + std::to_string(step_timeout.count()) + " ms), expected ") +
                                describe(e));
        }
        std::string regex;
        if (auto bad = step_regex(e.regex, regex)) return *bad;
        if (auto verdict = judge(e, regex, got.lines)) return *verdict;
        break;
      }
    }
  }
  flush();
  return finish(Outcome::pass, "");
}

}  // namespace refsmtp::conform
