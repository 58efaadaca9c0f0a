// refsmtpd: the reference MTA/MDA.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>

#include "refsmtp/server/server.hpp"

int main(int argc, char** argv) {
  using namespace refsmtp::server;
  CLI::App app{"refsmtpd - reference SMTP server (MX role; local delivery to Maildir)"};
  app.set_version_flag("--version", "refsmtpd 0.1.0");
  ServerOptions opt;
  std::vector<std::string> listen;
  app.add_option("--listen", listen, "ROLE=ADDRESS:PORT to listen on (repeatable); PORT 0 picks a free port. Roles: mx")
      ->required();
  app.add_option("--hostname", opt.hostname, "this server's name in greetings and Received: headers")->capture_default_str();
  app.add_option("--spool", opt.spool_dir, "queue directory (created if missing)");
  app.add_option("--mail-root", opt.mail_root, "Maildirs are written to MAIL_ROOT/<mailbox>/Maildir");
  app.add_option("--recipients", opt.recipients_file, "recipient table: domains, mailboxes, aliases")->check(CLI::ExistingFile);
  app.add_option("--domain", opt.domains, "a local domain; every safe local part is a mailbox (repeatable)");
  app.add_option("--tls-cert", opt.tls_cert, "PEM certificate chain; with --tls-key, STARTTLS is offered")->check(CLI::ExistingFile);
  app.add_option("--tls-key", opt.tls_key, "PEM private key")->check(CLI::ExistingFile);
  app.add_option("--max-size", opt.max_message_size, "largest message accepted, in octets (SIZE)")->capture_default_str();
  app.add_flag("--test-mode", opt.test_mode, "keep each message as a file in --capture-dir instead of queueing it");
  app.add_option("--capture-dir", opt.capture_dir, "where --test-mode writes messages");
  CLI11_PARSE(app, argc, argv);

  for (const auto& l : listen) {
    std::string error;
    auto spec = parse_listen(l, error);
    if (!spec) {
      std::fprintf(stderr, "refsmtpd: %s\n", error.c_str());
      return 2;
    }
    opt.listeners.push_back(*spec);
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
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int sig) {
    std::fprintf(stderr, "refsmtpd: signal %d, stopping\n", sig);
    server.stop();
    io.stop();
  });
  io.run();
  return 0;
}
