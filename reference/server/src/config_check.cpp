// refsmtpd check-config: every problem a start would meet, found without binding a port or
// touching the spool, so a configuration can be checked before a restart.
#include <pwd.h>
#include <unistd.h>

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

std::vector<std::string> option_problems(const ServerOptions& opt) {
  std::vector<std::string> problems;
  if (opt.listeners.empty()) problems.emplace_back("no --listen given");
  if (opt.recipients_file.empty() && opt.domains.empty()) {
    problems.emplace_back("give the local domains: --domain DOMAIN (repeatable) or --recipients FILE");
  }
  if (std::any_of(opt.listeners.begin(), opt.listeners.end(), [](const ListenerSpec& l) { return needs_auth(l.role); })) {
    if (opt.tls_cert.empty() || opt.tls_key.empty()) problems.emplace_back("the submission roles need TLS: give --tls-cert and --tls-key");
    if (opt.credentials_file.empty()) {
      problems.emplace_back("the submission roles need --credentials FILE (make entries with: refsmtpd passwd USER --credentials FILE)");
    }
  }
  if (opt.test_mode) {
    if (opt.capture_dir.empty() == opt.capture_mbox.empty()) {
      problems.emplace_back("--test-mode needs one of --capture-dir DIR and --capture-mbox FILE");
    }
  } else if (!opt.capture_dir.empty() || !opt.capture_mbox.empty()) {
    problems.emplace_back("--capture-dir and --capture-mbox are for --test-mode only");
  } else if (opt.spool_dir.empty() || (opt.mail_root.empty() && opt.delivery != Delivery::lmtp)) {
    problems.emplace_back("--spool DIR and --mail-root DIR are required (or --test-mode --capture-dir DIR; with --lmtp no --mail-root)");
  }
  return problems;
}

std::vector<std::string> check_configuration(const ServerOptions& opt, const std::string& run_as) {
  std::vector<std::string> problems = option_problems(opt);
  if (!opt.recipients_file.empty()) {
    std::string error;
    if (const auto text = read_file(opt.recipients_file); !text) {
      problems.push_back("--recipients " + opt.recipients_file + ": cannot read it");
    } else if (!delivery::LocalRecipients::parse(*text, opt.recipients_file, error)) {
      problems.push_back(error);
    }
  }
  if (!opt.tls_cert.empty() || !opt.tls_key.empty()) {
    std::string error;
    if (!make_tls_context(opt.tls_cert, opt.tls_key, error)) problems.push_back(error);
  }
  if (!opt.credentials_file.empty()) {
    std::string error;
    if (auto problem = Credentials::mode_problem(opt.credentials_file)) problems.push_back(*problem);
    if (const auto text = read_file(opt.credentials_file); !text) {
      problems.push_back("--credentials " + opt.credentials_file + ": cannot read it");
    } else if (!Credentials::parse(*text, opt.credentials_file, error)) {
      problems.push_back(error);
    }
  }
  if (opt.test_mode && opt.capture_dir.empty() != opt.capture_mbox.empty()) {
    const auto [option, dir] = opt.capture_dir.empty()
                                   ? std::pair{"--capture-mbox", std::filesystem::path(opt.capture_mbox).parent_path().string()}
                                   : std::pair{"--capture-dir", opt.capture_dir};
    if (auto p = writable_dir_problem(option, dir)) problems.push_back(*p);
  } else if (!opt.test_mode) {
    // As root with --user, the directories are given to the user at start: root can write them.
    for (const auto& [option, dir] : {std::pair{"--spool", opt.spool_dir}, std::pair{"--mail-root", opt.mail_root}}) {
      if (dir.empty()) continue;
      if (auto p = writable_dir_problem(option, dir)) problems.push_back(*p);
    }
  }
  if (!run_as.empty() && !::getpwnam(run_as.c_str())) problems.push_back("--user " + run_as + ": no such user");
  return problems;
}

}  // namespace refsmtp::server
