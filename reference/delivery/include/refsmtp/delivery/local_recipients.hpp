#pragma once
// Who is local: the local domains, a recipient table with aliases, postmaster always present
// (RFC 5321 §4.5.1), optional +detail subaddressing and an optional catch-all. Mailbox names
// that come out of it are safe to use as path components (no "/", no "..", no leading dot).
//
// Table file format, one entry a line, "#" starts a comment:
//   domains example.com example.org     local domains (at least one)
//   alice                               a mailbox
//   info: alice, bob                    an alias to local mailboxes or aliases
//   sales: alice, partner@remote.test   ...or to remote addresses
//   *: alice                            catch-all for unknown local parts (optional)
//   postmaster: alice                   (postmaster exists even when not listed: mailbox "postmaster")
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/smtp/address.hpp"

namespace refsmtp::delivery {

struct Resolution {
  std::vector<std::string> mailboxes;    // local mailbox names, deduplicated, in order
  std::vector<smtp::Path> forwards;      // remote addresses an alias points to
};

class LocalRecipients {
 public:
  // Parses a table; on error returns nothing and sets `error` to "FILE:LINE: what".
  static std::optional<LocalRecipients> parse(std::string_view text, const std::string& filename, std::string& error);

  bool is_local_domain(std::string_view domain) const;
  // Resolves a recipient of a local domain (or the domainless <Postmaster>); nothing if unknown.
  std::optional<Resolution> resolve(const smtp::Path& recipient) const;

  char detail_separator = '+';  // "alice+lists" -> alice; '\0' turns subaddressing off

  static bool safe_mailbox_name(std::string_view name);

 private:
  std::vector<std::string> domains_;               // lower case
  std::map<std::string, std::vector<std::string>> entries_;  // lower-case local part -> targets ("" = mailbox)
  std::optional<std::vector<std::string>> catch_all_;
  bool expand(const std::string& name, int depth, Resolution& out) const;
};

}  // namespace refsmtp::delivery
