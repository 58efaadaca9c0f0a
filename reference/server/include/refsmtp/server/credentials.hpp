#pragma once
// The submission credentials file: one "USER:pbkdf2-sha256$ITERATIONS$SALT$HASH" line per user
// (salt and hash base64), written by `refsmtpd passwd USER`. Passwords are never stored, only
// salted PBKDF2-HMAC-SHA256 hashes (OpenSSL); verification compares in constant time.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace refsmtp::server {

class Credentials {
 public:
  // Parses a file's text; on error returns nothing and sets `error` to "FILE:LINE: what".
  static std::optional<Credentials> parse(std::string_view text, const std::string& filename, std::string& error);
  bool verify(std::string_view user, std::string_view password) const;
  std::size_t size() const { return entries_.size(); }

  // A new entry line (without newline) for `user` with a random salt.
  static std::string make_entry(std::string_view user, std::string_view password, unsigned iterations = 200000);
  // `text` with `entry`'s user replaced or added; the result ends in a newline.
  static std::string upsert(std::string_view text, std::string_view entry);
  static bool valid_user(std::string_view user);
  // Like ssh with a private key: a file its group or others may read or write is refused
  // (refsmtpd reads it as root, before --user). Why, with the chmod that fixes it; nothing when
  // the mode is fine or the file is missing.
  static std::optional<std::string> mode_problem(const std::string& path);

 private:
  struct Entry {
    unsigned iterations = 0;
    std::string salt, hash;  // raw bytes
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace refsmtp::server
