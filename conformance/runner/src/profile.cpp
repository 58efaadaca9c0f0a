// The target profile: what the server under test treats as valid, as "name = value" lines.
#include <algorithm>

#include "refsmtp/conform/runner.hpp"

namespace refsmtp::conform {

const std::vector<std::pair<std::string, std::string>>& profile_keys() {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"domain", "a domain the server takes mail for"},
      {"rcpt", "a mailbox there that exists"},
      {"unknown", "a mailbox there that does not exist"},
      {"sender", "the reverse-path the cases use"},
      {"remote", "a foreign address the server must not relay to for an unauthenticated client"},
      {"helo", "the name the cases give in EHLO/HELO"},
      {"user", "a submission account (AUTH cases)"},
      {"password", "its password"},
      {"deliver_rcpt", "where delivery cases send (default: rcpt; with --sink, an address relayed to the sink)"},
      {"accept_all", "yes: the server accepts every recipient (a test sink, a catch-all); cases that need a refusal skip"},
      {"trusted_client", "yes: the server trusts the runner's address (relaying, submitting without AUTH: mynetworks); cases that need a refusal skip"},
      {"remote_via_sink", "yes: were the server to relay mail for remote, it would reach the --sink (the relay case judges what left)"},
      {"auth_mechanism", "PLAIN or LOGIN: the mechanism AUTH steps use (default: PLAIN if offered, else LOGIN)"},
      {"command_timeout", "seconds (1-600) the server waits for a command before it gives up; cases that wait it out need it"},
  };
  return keys;
}

std::map<std::string, std::string> default_profile() {
  return {{"domain", "example.test"}, {"rcpt", "postmaster@example.test"}, {"unknown", "no-such-user-9z@example.test"},
          {"sender", "conform@client.test"}, {"remote", "someone@remote.invalid"}, {"user", "conform"},
          {"password", "conform-password"}, {"helo", "client.test"}, {"accept_all", "no"}};
}

bool parse_profile(const std::string& text, const std::string& file, std::map<std::string, std::string>& out, std::string& error) {
  std::size_t lineno = 0, pos = 0;
  auto trim = [](std::string s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
    return s;
  };
  while (pos < text.size()) {
    ++lineno;
    const std::size_t lf = text.find('\n', pos);
    const std::string line = trim(text.substr(pos, lf == std::string::npos ? std::string::npos : lf - pos));
    pos = lf == std::string::npos ? text.size() : lf + 1;
    if (line.empty() || line[0] == '#') continue;
    const std::string where = file + ":" + std::to_string(lineno) + ": ";
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) {
      error = where + "expected name = value";
      return false;
    }
    const std::string name = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    const auto& keys = profile_keys();
    if (std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return k.first == name; })) {
      std::string known;
      for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k.first;
      error = where + "unknown profile key '" + name + "' (known: " + known + ")";
      return false;
    }
    if ((name == "accept_all" || name == "trusted_client" || name == "remote_via_sink") && value != "yes" && value != "no") {
      error = where + name + " is yes or no";
      return false;
    }
    if (name == "command_timeout" && (value.empty() || value.size() > 3 || value.find_first_not_of("0123456789") != std::string::npos ||
                                      std::stoi(value) < 1 || std::stoi(value) > 600)) {
      error = where + "command_timeout is a number of seconds, 1 to 600";
      return false;
    }
    if (name == "auth_mechanism" && value != "PLAIN" && value != "LOGIN") {
      error = where + "auth_mechanism is PLAIN or LOGIN";
      return false;
    }
    out[name] = value;
  }
  return true;
}

}  // namespace refsmtp::conform
