// refsmtpd: the reference MTA/MDA.
//
//   refsmtpd --listen mx=127.0.0.1:2525 --domain example.test --spool DIR --mail-root DIR
//   refsmtpd passwd USER --credentials FILE        (reads the password from standard input)
#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "refsmtp/server/credentials.hpp"
#include "refsmtp/server/server.hpp"

namespace {

using namespace refsmtp::server;

// Gives the spool and mail directories to `user`, then becomes that user for good (groups, gid,
// uid in that order, and checks that root cannot be regained).
bool drop_privileges(const std::string& user, const std::vector<std::string>& dirs, std::string& error) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (!pw) {
    error = "--user " + user + ": no such user";
    return false;
  }
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    if (::chown(d.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      error = "--user " + user + ": cannot give " + d + " to the user: " + std::strerror(errno);
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

int run_passwd(const std::string& user, const std::string& file, unsigned iterations) {
  if (!Credentials::valid_user(user)) {
    std::fprintf(stderr, "refsmtpd passwd: invalid user name '%s' (printable, no spaces or ':')\n", user.c_str());
    return 2;
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
    return 2;
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
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << updated;
    if (!out.flush()) {
      std::fprintf(stderr, "refsmtpd passwd: cannot write %s\n", tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    std::fprintf(stderr, "refsmtpd passwd: cannot replace %s\n", file.c_str());
    return 1;
  }
  std::fprintf(stderr, "refsmtpd passwd: %s updated for %s\n", file.c_str(), user.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"refsmtpd - reference SMTP server: MX, submission (STARTTLS + AUTH) and submissions (implicit TLS),\n"
               "durable queue, local delivery to Maildir"};
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
  app.add_option("--max-connections", opt.max_connections, "connections at once; more get 421 4.7.0")->capture_default_str();
  app.add_option("--max-connections-per-client", opt.max_connections_per_client, "connections at once from one address")
      ->capture_default_str();
  app.add_option("--timeout-command", opt.command_timeout_s, "seconds to wait for a command (RFC 5321 §4.5.3.2.7)")
      ->capture_default_str();
  app.add_option("--timeout-data", opt.data_timeout_s, "seconds to wait for more message data")->capture_default_str();
  app.add_option("--max-connection-time", opt.max_connection_time_s, "seconds a connection may last in all")
      ->capture_default_str();
  app.add_option("--drain-timeout", opt.drain_timeout_s, "on SIGTERM, seconds transactions may take to finish")
      ->capture_default_str();
  app.add_option("--threads", opt.threads, "io threads")->capture_default_str()->check(CLI::Range(1u, 64u));
  app.add_flag("--log-json", opt.log_json, "log one JSON object per line (default: key=value text)");
  std::string run_as;
  app.add_option("--user", run_as, "after binding the listeners, drop root privileges to this user");
  app.set_config("--config", "", "read options from a TOML file (keys are the long option names)");
  app.add_flag("--test-mode", opt.test_mode, "keep each message as a file in --capture-dir instead of queueing it");
  app.add_option("--capture-dir", opt.capture_dir, "where --test-mode writes messages");

  auto* pw = app.add_subcommand("passwd", "add or change a user in a credentials file; the password is read from stdin");
  std::string pw_user, pw_file;
  unsigned pw_iterations = 200000;
  pw->add_option("USER", pw_user, "user name")->required();
  pw->add_option("--credentials", pw_file, "the credentials file (created if missing)")->required();
  pw->add_option("--iterations", pw_iterations, "PBKDF2 iterations")->capture_default_str()->check(CLI::Range(1000u, 100000000u));
  CLI11_PARSE(app, argc, argv);

  if (*pw) return run_passwd(pw_user, pw_file, pw_iterations);
  opt.delivery = delivery == "mbox" ? Delivery::mbox : delivery == "lmtp" ? Delivery::lmtp : Delivery::maildir;
  if (opt.delivery == Delivery::lmtp) {
    if (lmtp.empty()) {
      std::fprintf(stderr, "refsmtpd: --delivery lmtp needs --lmtp ADDRESS:PORT or --lmtp /path/to/socket\n");
      return 2;
    }
    if (lmtp.front() == '/') {
      opt.lmtp.unix_path = lmtp;
    } else {
      const auto colon = lmtp.rfind(':');
      char* end = nullptr;
      const long port = colon == std::string::npos ? -1 : std::strtol(lmtp.c_str() + colon + 1, &end, 10);
      if (port <= 0 || port > 65535 || *end != '\0') {
        std::fprintf(stderr, "refsmtpd: --lmtp '%s': expected ADDRESS:PORT\n", lmtp.c_str());
        return 2;
      }
      opt.lmtp.host = lmtp.substr(0, colon);
      if (opt.lmtp.host.size() > 2 && opt.lmtp.host.front() == '[') opt.lmtp.host = opt.lmtp.host.substr(1, opt.lmtp.host.size() - 2);
      opt.lmtp.port = static_cast<std::uint16_t>(port);
    }
  }
  if (listen.empty()) {
    std::fprintf(stderr, "refsmtpd: --listen ROLE=ADDRESS:PORT is required (see --help)\n");
    return 2;
  }
  for (const auto& l : listen) {
    std::string error;
    auto spec = parse_listen(l, error);
    if (!spec) {
      std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
      return 2;
    }
    opt.listeners.push_back(*spec);
  }
  if (!run_as.empty()) {
    opt.after_bind = [run_as, dirs = std::vector<std::string>{opt.spool_dir, opt.mail_root, opt.capture_dir}](std::string& error) {
      return drop_privileges(run_as, dirs, error);
    };
  }
  boost::asio::io_context io;
  Server server(io, opt);
  std::string error;
  if (!server.start(error)) {
    std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
    return 1;
  }
  for (const auto& b : server.bound()) {
    std::printf("listening role=%s address=%s port=%u\n", b.role.c_str(), b.address.c_str(), b.port);
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
  for (unsigned i = 1; i < opt.threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
