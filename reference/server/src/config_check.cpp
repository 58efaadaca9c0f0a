// refsmtpd check-config: every problem a start would meet, found without binding a port or
// touching the spool, so a configuration can be checked before a restart.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "listeners_internal.hpp"
#include "refsmtp/server/server.hpp"

namespace refsmtp::server {

namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The directory, or the nearest existing parent that would hold it, is writable by this process.
std::optional<std::string> writable_dir_problem(const std::string& option, const std::string& dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec);
  while (!p.empty() && !std::filesystem::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  if (!std::filesystem::is_directory(p, ec)) return option + " " + dir + ": " + p.string() + " is not a directory";
  if (::access(p.c_str(), W_OK | X_OK) != 0) return option + " " + dir + ": " + p.string() + " is not writable by this user";
  return std::nullopt;
}

}  // namespace

std::vector<std::string> check_configuration(const ServerOptions& opt, const std::string& run_as) {
  std::vector<std::string> problems;
  if (opt.listeners.empty()) problems.emplace_back("no --listen given");
  if (!opt.recipients_file.empty()) {
    std::string error;
    if (const auto text = read_file(opt.recipients_file); !text) {
      problems.push_back("--recipients " + opt.recipients_file + ": cannot read it");
    } else if (!delivery::LocalRecipients::parse(*text, opt.recipients_file, error)) {
      problems.push_back(error);
    }
  } else if (opt.domains.empty()) {
    problems.emplace_back("give the local domains: --domain DOMAIN (repeatable) or --recipients FILE");
  }
  if (!opt.tls_cert.empty() || !opt.tls_key.empty()) {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_server);
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(opt.tls_cert, ec);
    if (!ec) ctx.use_private_key_file(opt.tls_key, boost::asio::ssl::context::pem, ec);
    if (!ec && !SSL_CTX_check_private_key(ctx.native_handle())) {
      problems.push_back("--tls-cert " + opt.tls_cert + " and --tls-key " + opt.tls_key + " do not match");
    } else if (ec) {
      problems.push_back("TLS certificate/key (" + opt.tls_cert + ", " + opt.tls_key + "): " + ec.message());
    }
  }
  const bool auth = std::any_of(opt.listeners.begin(), opt.listeners.end(), [](const ListenerSpec& l) { return needs_auth(l.role); });
  if (auth && (opt.tls_cert.empty() || opt.tls_key.empty())) {
    problems.emplace_back("the submission roles need TLS: give --tls-cert and --tls-key");
  }
  if (auth && opt.credentials_file.empty()) problems.emplace_back("the submission roles need --credentials FILE");
  if (!opt.credentials_file.empty()) {
    struct stat st{};
    std::string error;
    if (::stat(opt.credentials_file.c_str(), &st) == 0 && (st.st_mode & 077)) {
      problems.push_back("--credentials " + opt.credentials_file + " is open to other users: chmod go-rwx " + opt.credentials_file);
    }
    if (const auto text = read_file(opt.credentials_file); !text) {
      problems.push_back("--credentials " + opt.credentials_file + ": cannot read it");
    } else if (!Credentials::parse(*text, opt.credentials_file, error)) {
      problems.push_back(error);
    }
  }
  if (opt.test_mode) {
    if (opt.capture_dir.empty() == opt.capture_mbox.empty()) {
      problems.emplace_back("--test-mode needs one of --capture-dir DIR and --capture-mbox FILE");
    } else if (!opt.capture_dir.empty()) {
      if (auto p = writable_dir_problem("--capture-dir", opt.capture_dir)) problems.push_back(*p);
    } else if (auto p = writable_dir_problem("--capture-mbox", std::filesystem::path(opt.capture_mbox).parent_path().string())) {
      problems.push_back(*p);
    }
  } else if (!opt.capture_dir.empty() || !opt.capture_mbox.empty()) {
    problems.emplace_back("--capture-dir and --capture-mbox are for --test-mode only");
  } else {
    if (opt.spool_dir.empty()) problems.emplace_back("--spool DIR is required (or --test-mode)");
    if (opt.mail_root.empty() && opt.delivery != Delivery::lmtp) problems.emplace_back("--mail-root DIR is required (or --delivery lmtp)");
    // As root with --user, the directories are given to the user at start: root can write them.
    if (!opt.spool_dir.empty()) {
      if (auto p = writable_dir_problem("--spool", opt.spool_dir)) problems.push_back(*p);
    }
    if (!opt.mail_root.empty()) {
      if (auto p = writable_dir_problem("--mail-root", opt.mail_root)) problems.push_back(*p);
    }
  }
  if (!run_as.empty() && !::getpwnam(run_as.c_str())) problems.push_back("--user " + run_as + ": no such user");
  return problems;
}

}  // namespace refsmtp::server
