// refsmtpd: the reference MTA/MDA.
//
//   refsmtpd --listen mx=127.0.0.1:2525 --domain example.test --spool DIR --mail-root DIR
//   refsmtpd passwd USER --credentials FILE        (reads the password from standard input)
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <toml.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "refsmtp/core/text.hpp"
#include "control.hpp"
#include "refsmtp/queue/queue.hpp"
#include "refsmtp/queue/spool_lock.hpp"
#include "refsmtp/server/credentials.hpp"
#include "refsmtp/server/server.hpp"

namespace {

using namespace refsmtp::server;
namespace core = refsmtp::core;

// Exit statuses a script can tell apart (sysexits(3)).
constexpr int kExitFailure = 1;   // the server could not start (the message says why)
constexpr int kExitUsage = 64;    // a bad command line
constexpr int kExitNoInput = 66;  // a file named on the command line cannot be read
constexpr int kExitConfig = 78;   // a bad configuration file

// Gives the spool and mail directories to `user`, then becomes that user for good (groups, gid,
// uid in that order, and checks that root cannot be regained).
// DIRS (made if missing) and FILES (created empty if missing) are given to USER first.
bool drop_privileges(const std::string& user, const std::vector<std::string>& dirs, const std::vector<std::string>& files,
                     std::string& error) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (!pw) {
    error = "--user " + user + ": no such user";
    return false;
  }
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    std::error_code ec;
    if (std::filesystem::create_directories(d, ec) && !ec) {  // made here: private, as the server makes them
      std::filesystem::permissions(d, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
    }
    if (::chown(d.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      error = "--user " + user + ": cannot give " + d + " to the user: " + std::strerror(errno);
      return false;
    }
  }
  for (const auto& f : files) {
    if (f.empty()) continue;
    // Root gives this file away: only a plain file of its own (not a symlink, a hard link to
    // something else, or a FIFO to block on) that is new or already root's or the user's.
    const int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    struct stat st{};
    const char* why = nullptr;
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      why = std::strerror(errno);
    } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (st.st_uid != 0 && st.st_uid != pw->pw_uid)) {
      why = "not a plain file of root's or the user's";
    } else if (::fchown(fd, pw->pw_uid, pw->pw_gid) != 0) {
      why = std::strerror(errno);
    }
    if (fd >= 0) ::close(fd);
    if (why) {
      error = "--user " + user + ": cannot give " + f + " to the user: " + why;
      return false;
    }
  }
  if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0) {
    error = "--user " + user + ": cannot drop privileges: " + std::strerror(errno);
    return false;
  }
  if (pw->pw_uid != 0 && ::setuid(0) == 0) {
    error = "--user " + user + ": root privileges could be regained";
    return false;
  }
  return true;
}

// "250ms", "30s", "5m", "4h", "5d"; a bare number is seconds.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  const long long n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  long long ms = 0;
  if (unit == "ms") ms = n;
  else if (unit.empty() || unit == "s") ms = n * 1000;
  else if (unit == "m") ms = n * 60 * 1000;
  else if (unit == "h") ms = n * 3600 * 1000;
  else if (unit == "d") ms = n * 86400 * 1000;
  else return std::nullopt;
  return std::chrono::milliseconds(ms);
}

// Reads the retry options into `policy`; false with `error` naming the option.
bool parse_retry(const std::string& intervals, const std::string& later, const std::string& max_interval,
                 const std::string& give_up, const std::string& delay_warning, refsmtp::queue::RetryPolicy& policy,
                 std::string& error) {
  auto one = [&](const std::string& option, const std::string& text, std::chrono::milliseconds& out) {
    const auto d = parse_duration(text);
    if (!d) {
      error = option + " '" + text + "': expected a duration such as 90s, 30m, 4h or 5d";
      return false;
    }
    out = *d;
    return true;
  };
  if (!intervals.empty()) {
    policy.first.clear();
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = intervals.find(',', start);
      std::chrono::milliseconds d{};
      if (!one("--retry-intervals", intervals.substr(start, comma == std::string::npos ? std::string::npos : comma - start), d)) {
        return false;
      }
      policy.first.push_back(d);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (!later.empty() && !one("--retry-later", later, policy.later)) return false;
  if (!max_interval.empty() && !one("--retry-max", max_interval, policy.max_interval)) return false;
  if (!give_up.empty() && !one("--give-up", give_up, policy.give_up_after)) return false;
  if (delay_warning == "off") {
    policy.delay_warning.reset();
  } else if (!delay_warning.empty()) {
    std::chrono::milliseconds d{};
    if (!one("--delay-warning", delay_warning, d)) return false;
    policy.delay_warning = d;
  }
  return true;
}

int run_passwd(const std::string& user, const std::string& file, unsigned iterations) {
  if (!Credentials::valid_user(user)) {
    std::fprintf(stderr, "refsmtpd passwd: invalid user name '%s' (printable, no spaces or ':')\n", user.c_str());
    return kExitUsage;
  }
  const bool tty = ::isatty(STDIN_FILENO);
  termios old{};
  if (tty) {
    std::fprintf(stderr, "Password for %s: ", user.c_str());
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string password;
  std::getline(std::cin, password);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  if (password.empty()) {
    std::fprintf(stderr, "refsmtpd passwd: empty password refused\n");
    return kExitUsage;
  }
  std::string text;
  if (std::ifstream in(file); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    std::string error;
    if (!Credentials::parse(text, file, error)) {
      std::fprintf(stderr, "refsmtpd passwd: %s\n", error.c_str());
      return 1;
    }
  }
  const std::string updated = Credentials::upsert(text, Credentials::make_entry(user, password, iterations));
  // The file holds password hashes: its owner's alone, as ssh wants of a private key (refsmtpd
  // reads it as root, before it drops to --user). A new file is 0600; an existing one keeps its
  // owner and group, and its mode less any bits for the group or others. Written to a temporary
  // file, synced, then renamed over.
  mode_t mode = 0600;
  struct stat st {};
  const bool existed = ::stat(file.c_str(), &st) == 0;
  if (existed) mode = st.st_mode & 0600;
  const std::string tmp = file + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  bool ok = fd >= 0 && ::fchmod(fd, mode) == 0;  // the umask must not widen nor narrow it
  if (ok && existed && ::geteuid() == 0) ok = ::fchown(fd, st.st_uid, st.st_gid) == 0;
  for (std::size_t done = 0; ok && done < updated.size();) {
    const ssize_t n = ::write(fd, updated.data() + done, updated.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "refsmtpd passwd: cannot write %s: %s\n", tmp.c_str(), std::strerror(errno));
    ::unlink(tmp.c_str());
    return 1;
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    std::fprintf(stderr, "refsmtpd passwd: cannot replace %s: %s\n", file.c_str(), std::strerror(errno));
    ::unlink(tmp.c_str());
    return 1;
  }
  std::fprintf(stderr, "refsmtpd passwd: %s updated for %s\n", file.c_str(), user.c_str());
  return 0;
}


// The long option names of `app` (without "--"), for suggestions and for the config file's keys.
std::vector<std::string> long_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& n : o->get_lnames()) names.push_back(n);
  }
  return names;
}

// A configuration file's arguments: each top-level key of the TOML file is a long option name,
// its value the option's (an array for a repeatable option, true for a flag). Keys the command
// line already gives are left out: the command line wins. Every problem names the file and line;
// `where` maps each option taken from the file to "FILE:LINE: KEY" for later errors.
struct ConfigProblem {
  int status;
  std::string message;
};
std::optional<ConfigProblem> config_arguments(const CLI::App& app, const std::string& file, std::vector<std::string>& args,
                                              std::map<std::string, std::string>& where) {
  std::ifstream probe(file);
  if (!probe) return ConfigProblem{kExitNoInput, "--config " + file + ": " + std::strerror(errno)};
  toml::value root;
  try {
    root = toml::parse(file);
  } catch (const toml::syntax_error& e) {
    return ConfigProblem{kExitConfig, "--config " + file + ": not valid TOML:\n" + e.what()};
  } catch (const std::exception& e) {
    return ConfigProblem{kExitConfig, "--config " + file + ": " + e.what()};
  }
  // In file order, so that the first problem reported is the first in the file.
  std::vector<std::pair<std::uint_least32_t, std::string>> keys;
  for (const auto& [key, value] : root.as_table()) keys.emplace_back(value.location().line(), key);
  std::sort(keys.begin(), keys.end());
  const std::vector<std::string> names = long_names(app);
  for (const auto& [line, key] : keys) {
    const std::string at = file + ":" + std::to_string(line) + ": " + key;
    const toml::value& v = root.at(key);
    if (v.is_table()) {
      return ConfigProblem{kExitConfig, at + ": a [table] is not used; every key is a long option name at the top level"};
    }
    const CLI::Option* o = key == "config" ? nullptr : app.get_option_no_throw("--" + key);
    if (!o) {
      const std::string near = core::nearest(key, names);
      return ConfigProblem{kExitConfig, at + ": unknown key" + (near.empty() ? std::string() : " (did you mean '" + near + "'?)") +
                                            "; keys are refsmtpd's long option names, without --"};
    }
    if (o->count() > 0) continue;  // given on the command line
    std::vector<const toml::value*> values;
    if (v.is_array()) {
      for (const auto& e : v.as_array()) values.push_back(&e);
    } else {
      values.push_back(&v);
    }
    for (const toml::value* e : values) {
      std::string text;
      if (e->is_string()) {
        text = e->as_string().str;
      } else if (e->is_integer()) {
        text = std::to_string(e->as_integer());
      } else if (e->is_boolean() && o->get_expected_min() == 0) {  // a flag
        if (e->as_boolean()) args.push_back("--" + key);
        continue;
      } else {
        return ConfigProblem{kExitConfig, at + ": expected " + (o->get_expected_min() == 0 ? "true or false" : "a string or a number") +
                                              (o->get_expected_max() > 1 ? " (or an array of them)" : "")};
      }
      if (o->get_expected_min() == 0) {
        return ConfigProblem{kExitConfig, at + ": a flag takes true or false"};
      }
      args.push_back("--" + key + "=" + text);
    }
    where["--" + key] = at;
  }
  return std::nullopt;
}

// Parses `args` (program name first) into `app`; on a usage error prints it with a suggestion for
// a mistyped option -- or, for an option the config file gave, names the file and line -- and
// returns the exit status (0 after --help or --version).
std::optional<int> parse_command_line(CLI::App& app, const std::vector<std::string>& args,
                                      const std::map<std::string, std::string>& from_config) {
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);  // CLI11 takes them last first
  try {
    app.parse(reversed);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string what = e.what();
    for (const auto& [option, at] : from_config) {
      if (what.find(option) != std::string::npos) {
        std::fprintf(stderr, "refsmtpd: %s: %s\n", at.c_str(), what.c_str());
        return kExitConfig;
      }
    }
    std::fprintf(stderr, "refsmtpd: %s\n", what.c_str());
    if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
      std::vector<std::string> names;
      for (const auto& n : long_names(app)) names.push_back("--" + n);
      for (const auto& word : app.remaining()) {
        if (!word.starts_with("--")) continue;
        const std::string near = core::nearest(word.substr(0, word.find('=')), names);
        if (!near.empty()) std::fprintf(stderr, "refsmtpd: did you mean %s?\n", near.c_str());
      }
    }
    std::fprintf(stderr, "Try 'refsmtpd --help'.\n");
    const bool missing_file = dynamic_cast<const CLI::ValidationError*>(&e) && what.find("does not exist") != std::string::npos;
    return missing_file ? kExitNoInput : kExitUsage;
  }
}

// refsmtpd queue ACTION [ID] --spool DIR: asks the refsmtpd running on DIR over its control
// socket; with none running, works on the spool itself (as its owner, holding the spool's lock).
int run_queue(const std::string& action, const std::string& id, const std::string& spool) {
  constexpr int kExitUnavailable = 69, kExitTempFail = 75, kExitNoPerm = 77;
  const std::string request = action + (id.empty() ? "" : " " + id);
  auto print = [&](const std::string& reply) {
    const std::size_t nl = reply.find('\n');
    const std::string first = reply.substr(0, nl);
    if (first != "ok") {
      std::fprintf(stderr, "refsmtpd queue: %s\n", first.starts_with("error: ") ? first.substr(7).c_str() : first.c_str());
      return kExitFailure;
    }
    const std::string rest = nl == std::string::npos ? std::string() : reply.substr(nl + 1);
    std::fputs(rest.c_str(), stdout);
    return 0;
  };
  const std::string path = spool + "/control";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "refsmtpd queue: --spool %s: the path is too long for a socket\n", spool.c_str());
    if (fd >= 0) ::close(fd);
    return kExitUsage;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    timeval tv{60, 0};  // a request waits at most for the delivery pass in progress
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string line = request + "\n";
    std::string reply;
    if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (reply.empty()) {
      std::fprintf(stderr, "refsmtpd queue: the refsmtpd on %s did not answer\n", spool.c_str());
      return kExitTempFail;
    }
    return print(reply);
  }
  const int connect_errno = errno;
  ::close(fd);
  if (connect_errno != ENOENT && connect_errno != ECONNREFUSED) {
    std::fprintf(stderr, "refsmtpd queue: cannot reach %s: %s\n", path.c_str(), std::strerror(connect_errno));
    return connect_errno == EACCES ? kExitNoPerm : kExitUnavailable;
  }
  // No daemon: the spool itself, if it is one, if it is ours, and if nobody else has it.
  struct stat st{};
  if (::stat(spool.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "refsmtpd queue: --spool %s: no such spool directory\n", spool.c_str());
    return kExitNoInput;
  }
  if (action == "flush") {
    std::fprintf(stderr, "refsmtpd queue: no refsmtpd runs on %s: flush asks a running one to try now\n", spool.c_str());
    return kExitUnavailable;
  }
  if (st.st_uid != ::geteuid()) {
    const passwd* owner = ::getpwuid(st.st_uid);
    std::fprintf(stderr, "refsmtpd queue: no refsmtpd runs on %s; to work on the spool itself, run as its owner (%s)\n",
                 spool.c_str(), owner ? owner->pw_name : std::to_string(st.st_uid).c_str());
    return kExitNoPerm;
  }
  refsmtp::queue::SpoolLock lock;
  std::string lock_error;
  if (lock.take(spool, lock_error) != refsmtp::queue::SpoolLock::Status::held) {
    std::fprintf(stderr, "refsmtpd queue: %s is in use, but its control socket does not answer (%s)\n", spool.c_str(),
                 lock_error.c_str());
    return kExitTempFail;
  }
  refsmtp::queue::PosixStorage storage(spool);
  refsmtp::queue::Queue queue(storage, refsmtp::queue::QueueConfig{});
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (auto err = queue.open(now)) {
    std::fprintf(stderr, "refsmtpd queue: cannot open the spool %s: %s\n", spool.c_str(), err.message().c_str());
    return kExitFailure;
  }
  return print(control_request(queue, request, now, [](const std::string&) { return false; }));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"refsmtpd - reference SMTP server: MX, submission (STARTTLS + AUTH) and submissions (implicit TLS),\n"
               "durable queue, local delivery to Maildir, mbox or LMTP, relaying by MX",
               "refsmtpd"};
  app.set_version_flag("--version", "refsmtpd 0.1.0");
  ServerOptions opt;
  std::vector<std::string> listen;
  app.add_option("--listen", listen,
                 "ROLE=ADDRESS:PORT to listen on (repeatable); PORT 0 picks a free port.\n"
                 "Roles: mx (no AUTH, no relaying), submission (STARTTLS, then AUTH before MAIL),\n"
                 "submissions (implicit TLS, AUTH before MAIL)");
  app.add_option("--hostname", opt.hostname, "this server's name in greetings and Received: headers")->capture_default_str();
  app.add_option("--spool", opt.spool_dir, "queue directory (created if missing)");
  app.add_option("--mail-root", opt.mail_root, "Maildirs are written to MAIL_ROOT/<mailbox>/Maildir");
  std::string delivery = "maildir", lmtp;
  app.add_option("--delivery", delivery, "local delivery: maildir (MAIL_ROOT/<box>/Maildir), mbox (MAIL_ROOT/<box>.mbox), lmtp")
      ->check(CLI::IsMember({"maildir", "mbox", "lmtp"}))
      ->capture_default_str();
  app.add_option("--lmtp", lmtp, "with --delivery lmtp: the LMTP server, ADDRESS:PORT (numeric) or a Unix socket path");
  app.add_option("--recipients", opt.recipients_file, "recipient table: domains, mailboxes, aliases")->check(CLI::ExistingFile);
  app.add_option("--domain", opt.domains, "a local domain; every safe local part is a mailbox (repeatable)");
  app.add_option("--tls-cert", opt.tls_cert, "PEM certificate chain (TLS 1.2+)")->check(CLI::ExistingFile);
  app.add_option("--tls-key", opt.tls_key, "PEM private key")->check(CLI::ExistingFile);
  app.add_option("--credentials", opt.credentials_file, "AUTH users for the submission roles (see: passwd)");
  app.add_option("--max-size", opt.max_message_size, "largest message accepted, in octets (SIZE)")->capture_default_str();
  // As many connections as the descriptors allow (the soft limit is raised to the hard one), up
  // to 10,000 (10,000 idle connections were measured at about 84 MiB), keeping 256 descriptors for
  // files and relaying.
  {
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
      if (nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &nofile);
        ::getrlimit(RLIMIT_NOFILE, &nofile);
      }
      const rlim_t usable = nofile.rlim_cur > 356 ? nofile.rlim_cur - 256 : 100;
      opt.max_connections = static_cast<std::size_t>(std::clamp<rlim_t>(usable, 100, 10000));
    }
  }
  app.add_option("--max-connections", opt.max_connections,
                 "connections at once; more get 421 4.7.0 (default: what the descriptor limit allows, at most 10000)")
      ->capture_default_str();
  app.add_option("--stress-percent", opt.stress_percent,
                 "stress starts when this share of --max-connections is open (ends below two thirds of it):\n"
                 "new connections then get --stress-timeout for each command and 3 bad commands")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100u));
  app.add_option("--stress-timeout", opt.stress_timeout_s, "seconds to wait for a command under stress")->capture_default_str();
  app.add_option("--max-connections-per-client", opt.max_connections_per_client, "connections at once from one address")
      ->capture_default_str();
  app.add_option("--timeout-command", opt.command_timeout_s, "seconds to wait for a command (RFC 5321 §4.5.3.2.7)")
      ->capture_default_str();
  app.add_option("--timeout-data", opt.data_timeout_s, "seconds to wait for more message data")->capture_default_str();
  app.add_option("--max-connection-time", opt.max_connection_time_s, "seconds a connection may last in all")
      ->capture_default_str();
  app.add_option("--drain-timeout", opt.drain_timeout_s, "on SIGTERM, seconds transactions may take to finish")
      ->capture_default_str();
  // One per core by default: each io thread has its own event loop, so they scale with cores.
  opt.threads = std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  app.add_option("--threads", opt.threads,
                 "io threads, each with an event loop of its own; connections are spread over them (default: one per core)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  app.add_flag("--log-json", opt.log_json, "log one JSON object per line (default: key=value text)");
  // Relay.
  std::string relay_mode = "none", relay_tls = "opportunistic";
  app.add_option("--relay", relay_mode,
                 "mail to other domains (from authenticated clients, aliases and bounces): mx looks up\n"
                 "the domain's MX records in DNS; none sends only where a --route says")
      ->check(CLI::IsMember({"none", "mx"}))
      ->capture_default_str();
  app.add_option("--route", opt.relay.routes,
                 "DOMAIN=HOST[:PORT][;tls=none|opportunistic|required][;auth=FILE] (repeatable): a fixed\n"
                 "next hop for DOMAIN; DOMAIN * is a smarthost for every other domain; FILE holds USER:PASSWORD");
  app.add_option("--dns-server", opt.relay.dns.servers, "ADDRESS[:PORT] of a DNS server for the relay (repeatable;\n"
                                                        "default: /etc/resolv.conf)");
  app.add_option("--relay-port", opt.relay.mx_port, "SMTP port of the exchangers found by MX lookup")->capture_default_str();
  app.add_option("--relay-tls", relay_tls, "STARTTLS when relaying: none, opportunistic (unverified, RFC 7435) or\n"
                                            "required (certificate and host name verified)")
      ->check(CLI::IsMember({"none", "opportunistic", "required"}))
      ->capture_default_str();
  app.add_option("--relay-ca", opt.relay.ca_file, "PEM trust store for --relay-tls required (default: the system's)")
      ->check(CLI::ExistingFile);
  app.add_option("--relay-connections", opt.relay.max_per_destination, "connections at once per destination domain")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100}));
  std::string relay_timeout = "5m", relay_connect_timeout = "30s";
  app.add_option("--relay-timeout", relay_timeout, "wait this long for each reply when relaying (RFC 5321 §4.5.3.2;\n"
                                                   "the end of data waits twice as long)")
      ->capture_default_str();
  app.add_option("--relay-connect-timeout", relay_connect_timeout, "wait this long for a connection")->capture_default_str();
  app.add_option("--max-received", opt.max_received, "more Received: headers than this is a mail loop (RFC 5321 §6.3)")
      ->capture_default_str();
  std::string retry_intervals, retry_later, retry_max, give_up, delay_warning;
  app.add_option("--retry-intervals", retry_intervals, "waits after the first failed attempts (default 5m,10m,20m)");
  app.add_option("--retry-later", retry_later, "then this wait, doubling (default 30m)");
  app.add_option("--retry-max", retry_max, "longest wait between attempts (default 4h)");
  app.add_option("--give-up", give_up, "bounce what is still undelivered this long after arrival (default 5d)");
  app.add_option("--delay-warning", delay_warning, "tell the sender once when mail is this late (default 4h; off)");
  std::string run_as;
  app.add_option("--user", run_as, "after binding the listeners, drop root privileges to this user");
  std::string config_file;
  app.add_option("--config", config_file,
                 "read options from a TOML file: KEY = VALUE per line, KEY a long option name without --\n"
                 "(an array for a repeatable option, true for a flag); the command line wins; unknown\n"
                 "keys and bad values are errors naming the file and line");
  app.add_flag("--test-mode", opt.test_mode,
               "capture messages (--capture-dir or --capture-mbox) instead of queueing and delivering them");
  app.add_option("--capture-dir", opt.capture_dir, "--test-mode: one file per message, NAME.eml, in this directory");
  app.add_option("--capture-mbox", opt.capture_mbox,
                 "--test-mode: append every message to this mbox file (mboxrd, LF line ends; faster than files)");

  auto* pw = app.add_subcommand("passwd", "add or change a user in a credentials file; the password is read from stdin");
  std::string pw_user, pw_file;
  unsigned pw_iterations = 200000;
  pw->add_option("USER", pw_user, "user name")->required();
  pw->add_option("--credentials", pw_file, "the credentials file (created if missing)")->required();
  pw->add_option("--iterations", pw_iterations, "PBKDF2 iterations")->capture_default_str()->check(CLI::Range(1000u, 100000000u));
  auto* check = app.add_subcommand("check-config", "check the options (and --config file) as a start would, without starting:\n"
                                                  "every problem is listed; exit 0 when there is none, else 78");
  check->fallthrough();  // the server's own options, after the subcommand too
  auto* qcmd = app.add_subcommand("queue", "list, show, flush, hold, release or delete queued mail: asks the refsmtpd running on\n"
                                           "--spool over its control socket; with none running, works on the spool itself (as its owner)");
  std::string q_action, q_id, q_spool;
  qcmd->add_option("ACTION", q_action, "list | show ID | flush [ID] (all when no ID) | hold ID | release ID | delete ID")
      ->required()
      ->check(CLI::IsMember({"list", "show", "flush", "hold", "release", "delete"}));
  qcmd->add_option("ID", q_id, "a queue id, as list shows it");
  qcmd->add_option("--spool", q_spool, "the spool directory of the refsmtpd to ask")->required();
  // --help by role: what to listen on and for whom, where mail goes, limits, relay, test mode.
  const std::vector<std::pair<const char*, std::vector<const char*>>> groups = {
      {"Listening and local mail", {"--listen", "--hostname", "--domain", "--recipients", "--tls-cert", "--tls-key",
                                    "--credentials", "--spool", "--mail-root", "--delivery", "--lmtp"}},
      {"Limits and load", {"--max-size", "--max-connections", "--max-connections-per-client", "--stress-percent",
                           "--stress-timeout", "--timeout-command", "--timeout-data", "--max-connection-time",
                           "--drain-timeout", "--threads"}},
      {"Relaying and retries", {"--relay", "--route", "--dns-server", "--relay-port", "--relay-tls", "--relay-ca",
                                "--relay-connections", "--relay-timeout", "--relay-connect-timeout", "--max-received",
                                "--retry-intervals", "--retry-later", "--retry-max", "--give-up", "--delay-warning"}},
      {"Test mode", {"--test-mode", "--capture-dir", "--capture-mbox"}},
      {"Running", {"--config", "--user", "--log-json"}},
  };
  for (const auto& [group, names] : groups) {
    for (const char* name : names) app.get_option(name)->group(group);
  }
  app.footer("Exit status (sysexits): 0 stopped cleanly; 64 bad command line; 66 a file it needs cannot be read;\n"
             "73 a directory, file or socket cannot be made; 74 the spool cannot be read; 75 a port or the spool\n"
             "is taken (try again); 77 --user cannot be taken on; 78 bad options or configuration; 1 anything else.");
  const std::vector<std::string> command_line(argv, argv + argc);
  if (const auto status = parse_command_line(app, command_line, {})) return *status;
  if (*qcmd) {
    if (q_id.empty() && q_action != "list" && q_action != "flush") {
      std::fprintf(stderr, "refsmtpd queue %s: needs a queue ID (see: refsmtpd queue list)\n", q_action.c_str());
      return kExitUsage;
    }
    if (!q_id.empty() && q_action == "list") {
      std::fprintf(stderr, "refsmtpd queue list: takes no ID (see: refsmtpd queue show ID)\n");
      return kExitUsage;
    }
    return run_queue(q_action, q_id, q_spool);
  }
  if (!config_file.empty() && !*pw) {
    // The file's options first, then the command line again: what it gives wins.
    std::vector<std::string> from_file;
    std::map<std::string, std::string> where;
    if (const auto problem = config_arguments(app, config_file, from_file, where)) {
      std::fprintf(stderr, "refsmtpd: %s\n", problem->message.c_str());
      return problem->status;
    }
    std::vector<std::string> all{command_line.front()};
    all.insert(all.end(), from_file.begin(), from_file.end());
    all.insert(all.end(), command_line.begin() + 1, command_line.end());
    if (const auto status = parse_command_line(app, all, where)) return *status;
  }

  if (*pw) return run_passwd(pw_user, pw_file, pw_iterations);
  opt.delivery = delivery == "mbox" ? Delivery::mbox : delivery == "lmtp" ? Delivery::lmtp : Delivery::maildir;
  if (opt.delivery == Delivery::lmtp) {
    if (lmtp.empty()) {
      std::fprintf(stderr, "refsmtpd: --delivery lmtp needs --lmtp ADDRESS:PORT or --lmtp /path/to/socket\n");
      return kExitUsage;
    }
    if (lmtp.front() == '/') {
      opt.lmtp.unix_path = lmtp;
    } else {
      const auto colon = lmtp.rfind(':');
      char* end = nullptr;
      const long port = colon == std::string::npos ? -1 : std::strtol(lmtp.c_str() + colon + 1, &end, 10);
      if (port <= 0 || port > 65535 || *end != '\0') {
        std::fprintf(stderr, "refsmtpd: --lmtp '%s': expected ADDRESS:PORT\n", lmtp.c_str());
        return kExitUsage;
      }
      opt.lmtp.host = lmtp.substr(0, colon);
      if (opt.lmtp.host.size() > 2 && opt.lmtp.host.front() == '[') opt.lmtp.host = opt.lmtp.host.substr(1, opt.lmtp.host.size() - 2);
      opt.lmtp.port = static_cast<std::uint16_t>(port);
    }
  }
  opt.relay.mx = relay_mode == "mx";
  opt.relay.tls = relay_tls == "none"       ? refsmtp::smtp::TlsPolicy::none
                  : relay_tls == "required" ? refsmtp::smtp::TlsPolicy::required
                                            : refsmtp::smtp::TlsPolicy::opportunistic;
  {
    std::string error;
    const auto command = parse_duration(relay_timeout), connect = parse_duration(relay_connect_timeout);
    if (!command || !connect) {
      std::fprintf(stderr, "refsmtpd: --relay-timeout/--relay-connect-timeout: expected a duration such as 30s or 5m\n");
      return kExitUsage;
    }
    opt.relay.command_timeout = *command;
    opt.relay.data_timeout = *command * 2;
    opt.relay.connect_timeout = *connect;
    if (!parse_retry(retry_intervals, retry_later, retry_max, give_up, delay_warning, opt.retry, error)) {
      std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
      return kExitUsage;
    }
  }
  if (listen.empty()) {
    std::fprintf(stderr, "refsmtpd: --listen ROLE=ADDRESS:PORT is required (see --help)\n");
    return kExitUsage;
  }
  for (const auto& l : listen) {
    std::string error;
    auto spec = parse_listen(l, error);
    if (!spec) {
      std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
      return kExitUsage;
    }
    opt.listeners.push_back(*spec);
  }
  if (*check) {
    const auto problems = check_configuration(opt, run_as);
    for (const auto& p : problems) std::fprintf(stderr, "refsmtpd check-config: %s\n", p.c_str());
    if (problems.empty()) std::printf("refsmtpd check-config: no problems found\n");
    return problems.empty() ? 0 : kExitConfig;
  }
  if (!run_as.empty()) {
    opt.after_bind = [run_as, dirs = std::vector<std::string>{opt.spool_dir, opt.mail_root, opt.capture_dir},
                      files = std::vector<std::string>{opt.test_mode ? opt.capture_mbox : std::string()}](std::string& error) {
      return drop_privileges(run_as, dirs, files, error);
    };
  }
  // One io_context per io thread, each run by its thread alone (concurrency hint 1): connections
  // are spread over them, and a connection's handlers never wake another thread. On a shared
  // io_context, the hand-offs between threads cost more than a second core gains (measured in
  // the README). The first one also runs the listeners, timers and signals.
  // (The others are made first, so they go last: a pending accept on `io` holds a socket of theirs.)
  std::vector<std::unique_ptr<boost::asio::io_context>> more_io;
  for (unsigned i = 1; i < opt.threads; ++i) more_io.push_back(std::make_unique<boost::asio::io_context>(1));
  boost::asio::io_context io(1);
  opt.connection_contexts = {&io};
  for (auto& c : more_io) opt.connection_contexts.push_back(c.get());
  Server server(io, opt);
  std::string error;
  if (!server.start(error)) {
    std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
    switch (server.start_failure()) {
      case StartFailure::config: return kExitConfig;
      case StartFailure::no_input: return kExitNoInput;
      case StartFailure::cant_create: return 73;  // EX_CANTCREAT
      case StartFailure::busy: return 75;         // EX_TEMPFAIL
      case StartFailure::privileges: return 77;   // EX_NOPERM
      case StartFailure::io_error: return 74;     // EX_IOERR
      case StartFailure::none: break;
    }
    return kExitFailure;
  }
  for (const auto& b : server.bound()) {
    std::printf("listening role=%s address=%s port=%u\n", std::string(role_name(b.role)).c_str(), b.address.c_str(), b.port);
  }
  std::fflush(stdout);
  // SIGTERM/SIGINT: drain (idle sessions get 421, transactions may finish); a second one stops
  // at once. SIGHUP: reload the TLS certificate and key.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  bool draining = false;
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      std::string reload_error;
      if (server.reload_tls(reload_error)) {
        server.note("tls_reload", {{"result", "ok"}});
      } else {
        server.note("tls_reload", {{"result", "fail"}, {"error", reload_error + " (keeping the old one)"}});
      }
    } else if (!draining) {
      draining = true;
      server.note("shutdown", {{"signal", std::to_string(sig)}, {"connections", std::to_string(server.connections())}});
      server.drain([&] {
        server.note("drained", {});
        io.stop();
      });
    } else {
      server.note("shutdown", {{"signal", std::to_string(sig)}, {"now", "1"}});
      io.stop();
      return;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  std::vector<std::thread> pool;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> idle_guards;
  for (auto& c : more_io) {
    idle_guards.push_back(boost::asio::make_work_guard(*c));  // run() waits for connections to come
    pool.emplace_back([&c] { c->run(); });
  }
  io.run();  // until drained or stopped
  for (auto& c : more_io) c->stop();
  for (auto& t : pool) t.join();
  return 0;
}
