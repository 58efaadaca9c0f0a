#include "refsmtp/delivery/local_recipients.hpp"

#include <algorithm>
#include <map>

#include "refsmtp/core/text.hpp"

namespace refsmtp::delivery {

namespace {

using core::ascii_lower;
using core::trim;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const std::size_t p = s.find(sep);
    out.push_back(trim(s.substr(0, p)));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

}  // namespace

bool LocalRecipients::safe_mailbox_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.' || name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::optional<LocalRecipients> LocalRecipients::parse(std::string_view text, const std::string& filename, std::string& error) {
  LocalRecipients t;
  std::size_t lineno = 0;
  std::map<std::string, std::size_t> defined_at;  // each name's line, for errors found after reading
  auto fail = [&](const std::string& what) {
    // FILE:LINE: what -- or FILE: what, for a problem of the whole file.
    error = filename + (lineno ? ":" + std::to_string(lineno) : std::string()) + ": " + what;
    return std::nullopt;
  };
  while (!text.empty()) {
    ++lineno;
    std::string_view line = core::next_line(text);
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.starts_with("domains ") || line == "domains") {
      for (auto d : split(line.substr(7), ' ')) {
        if (d.empty()) continue;
        smtp::AddressOptions opt;
        auto parsed = smtp::parse_domain(d, opt);
        if (!parsed || parsed->consumed != d.size()) return fail("invalid domain '" + std::string(d) + "'");
        t.domains_.push_back(ascii_lower(d));
      }
      continue;
    }
    const std::size_t colon = line.find(':');
    const std::string name = ascii_lower(trim(line.substr(0, colon)));
    if (name == "*") {
      if (colon == std::string_view::npos) return fail("the catch-all needs a target: '*: mailbox'");
    } else if (!safe_mailbox_name(name)) {
      return fail("invalid name '" + name + "' (letters, digits, '.', '_', '-'; no leading dot, no '..')");
    }
    if (t.entries_.count(name) || (name == "*" && t.catch_all_)) return fail("'" + name + "' is defined twice");
    std::vector<std::string> targets;
    if (colon != std::string_view::npos) {
      for (auto target : split(line.substr(colon + 1), ',')) {
        if (target.empty()) return fail("empty alias target");
        if (target.find('@') != std::string_view::npos) {
          smtp::AddressOptions opt;
          if (!smtp::parse_mailbox_exact(target, opt)) return fail("invalid address '" + std::string(target) + "'");
          targets.emplace_back(target);
        } else {
          const std::string n = ascii_lower(target);
          if (!safe_mailbox_name(n)) return fail("invalid alias target '" + std::string(target) + "'");
          targets.push_back(n);
        }
      }
    }
    if (name == "*") {
      t.catch_all_ = targets;
    } else {
      t.entries_[name] = targets;
    }
    defined_at[name] = lineno;
  }
  if (t.domains_.empty()) {
    lineno = 0;
    return fail("no 'domains' line: at least one local domain is needed");
  }
  // Every local alias target (and the catch-all's) must exist, or be postmaster, which always does.
  auto check_targets = [&](const std::string& name, const std::vector<std::string>& targets) {
    for (const auto& target : targets) {
      if (target.find('@') == std::string::npos && !t.entries_.count(target) && target != "postmaster") {
        return "alias '" + name + "' points to unknown '" + target + "'";
      }
    }
    return std::string();
  };
  for (const auto& [name, targets] : t.entries_) {
    if (auto problem = check_targets(name, targets); !problem.empty()) {
      lineno = defined_at[name];
      return fail(problem);
    }
  }
  if (t.catch_all_) {
    if (auto problem = check_targets("*", *t.catch_all_); !problem.empty()) {
      lineno = defined_at["*"];
      return fail(problem);
    }
  }
  return t;
}

bool LocalRecipients::is_local_domain(std::string_view domain) const {
  return std::find(domains_.begin(), domains_.end(), ascii_lower(domain)) != domains_.end();
}

bool LocalRecipients::expand(const std::string& name, int depth, Resolution& out) const {
  if (depth > 10) return false;  // an alias loop
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.empty()) {
    if (it == entries_.end() && name != "postmaster") return false;
    if (std::find(out.mailboxes.begin(), out.mailboxes.end(), name) == out.mailboxes.end()) out.mailboxes.push_back(name);
    return true;
  }
  for (const auto& target : it->second) {
    if (target.find('@') != std::string::npos) {
      smtp::Path p;
      p.mailbox = *smtp::parse_mailbox_exact(target, smtp::AddressOptions{});
      out.forwards.push_back(p);
    } else if (!expand(target, depth + 1, out)) {
      return false;
    }
  }
  return true;
}

std::optional<Resolution> LocalRecipients::resolve(const smtp::Path& recipient) const {
  if (!recipient.mailbox) return std::nullopt;
  const smtp::Mailbox& m = *recipient.mailbox;
  // "<Postmaster>" without a domain is always local (§4.1.1.3).
  if (!m.domain.empty() && !is_local_domain(m.domain)) return std::nullopt;
  // §4.1.2: a quoted form means what it quotes ("postmaster" is postmaster); what the table
  // cannot name (spaces, "@", ...) is simply not found, and safe_mailbox_name() guards paths.
  std::string local = ascii_lower(smtp::unquote_local_part(m.local_part));
  if (m.domain.empty() && local != "postmaster") return std::nullopt;
  if (detail_separator != '\0' && local != "postmaster") {
    const std::size_t sep = local.find(detail_separator);
    if (sep != std::string::npos && sep > 0) local = local.substr(0, sep);
  }
  Resolution r;
  if (safe_mailbox_name(local) && (entries_.count(local) || local == "postmaster")) {
    if (!expand(local, 0, r)) return std::nullopt;
    return r;
  }
  if (catch_all_) {
    for (const auto& target : *catch_all_) {
      if (target.find('@') != std::string::npos) {
        smtp::Path p;
        p.mailbox = *smtp::parse_mailbox_exact(target, smtp::AddressOptions{});
        r.forwards.push_back(p);
      } else if (!expand(target, 1, r)) {
        return std::nullopt;
      }
    }
    return r;
  }
  return std::nullopt;
}

}  // namespace refsmtp::delivery
