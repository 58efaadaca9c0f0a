#include "refsmtp/server/credentials.hpp"

#include <sys/stat.h>

#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>

#include "refsmtp/core/base64.hpp"
#include "refsmtp/core/text.hpp"

namespace refsmtp::server {

namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr unsigned kMinIterations = 1000;

std::string pbkdf2(std::string_view password, std::string_view salt, unsigned iterations) {
  std::string out(32, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out.size()),
                    reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

bool Credentials::valid_user(std::string_view user) {
  return !user.empty() && user.size() <= 128 && std::all_of(user.begin(), user.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && c != ':';
  });
}

std::optional<Credentials> Credentials::parse(std::string_view text, const std::string& filename, std::string& error) {
  Credentials c;
  std::size_t lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const std::string_view line = core::next_line(text);
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const std::string& what) {
      error = filename + ":" + std::to_string(lineno) + ": " + what;
      return std::nullopt;
    };
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected USER:" + std::string(kScheme) + "$ITERATIONS$SALT$HASH");
    const std::string user(line.substr(0, colon));
    if (!valid_user(user)) return fail("invalid user name");
    std::string_view rest = line.substr(colon + 1);
    std::string_view parts[4];
    for (int i = 0; i < 4; ++i) {
      const std::size_t d = rest.find('$');
      if ((i < 3) == (d == std::string_view::npos)) return fail("expected 4 '$'-separated fields after the user");
      parts[i] = rest.substr(0, d);
      rest = d == std::string_view::npos ? std::string_view() : rest.substr(d + 1);
    }
    if (parts[0] != kScheme) return fail("unknown scheme '" + std::string(parts[0]) + "' (only " + std::string(kScheme) + ")");
    Entry e;
    for (char ch : parts[1]) {
      if (ch < '0' || ch > '9' || e.iterations > 100'000'000) return fail("bad iteration count");
      e.iterations = e.iterations * 10 + static_cast<unsigned>(ch - '0');
    }
    if (e.iterations < kMinIterations) return fail("iteration count below " + std::to_string(kMinIterations));
    auto salt = core::base64_decode(parts[2]);
    auto hash = core::base64_decode(parts[3]);
    if (!salt || salt->size() < 8 || !hash || hash->size() != 32) return fail("bad salt or hash");
    e.salt = *salt;
    e.hash = *hash;
    if (c.entries_.count(user)) return fail("user '" + user + "' listed twice");
    c.entries_[user] = e;
  }
  return c;
}

bool Credentials::verify(std::string_view user, std::string_view password) const {
  auto it = entries_.find(std::string(user));
  if (it == entries_.end()) {
    // Spend the same time on unknown users, so timing does not tell which names exist.
    pbkdf2(password, "refsmtp-dummy-salt", kMinIterations * 10);
    return false;
  }
  const std::string got = pbkdf2(password, it->second.salt, it->second.iterations);
  return CRYPTO_memcmp(got.data(), it->second.hash.data(), got.size()) == 0;
}

std::string Credentials::make_entry(std::string_view user, std::string_view password, unsigned iterations) {
  std::string salt(16, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size()));
  return std::string(user) + ":" + std::string(kScheme) + "$" + std::to_string(iterations) + "$" + core::base64_encode(salt) +
         "$" + core::base64_encode(pbkdf2(password, salt, iterations));
}

std::string Credentials::upsert(std::string_view text, std::string_view entry) {
  const std::string prefix(entry.substr(0, entry.find(':') + 1));
  std::string out;
  bool replaced = false;
  while (!text.empty()) {
    const std::size_t lf = text.find('\n');
    const std::string_view line = text.substr(0, lf);
    text = lf == std::string_view::npos ? std::string_view() : text.substr(lf + 1);
    if (line.starts_with(prefix)) {
      if (!replaced) out += std::string(entry) + "\n";
      replaced = true;
    } else {
      out += std::string(line) + "\n";
    }
  }
  if (!replaced) out += std::string(entry) + "\n";
  return out;
}

std::optional<std::string> Credentials::mode_problem(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !(st.st_mode & 077)) return std::nullopt;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return "--credentials " + path + " is open to other users (mode " + mode + "): chmod go-rwx " + path;
}

}  // namespace refsmtp::server
