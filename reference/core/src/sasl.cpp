#include "refsmtp/core/sasl.hpp"

#include "refsmtp/core/base64.hpp"

namespace refsmtp::core {

bool SaslServer::supported(std::string_view mechanism) { return mechanism == "PLAIN" || mechanism == "LOGIN"; }

SaslServer::Step SaslServer::start(std::string_view mechanism, std::optional<std::string_view> initial_response) {
  creds_ = SaslCredentials{};
  creds_.mechanism = std::string(mechanism);
  step_ = 0;
  if (initial_response) return respond(*initial_response);
  // PLAIN starts with an empty challenge; LOGIN asks for the user name.
  return Step{Status::challenge, creds_.mechanism == "PLAIN" ? "" : "Username:"};
}

SaslServer::Step SaslServer::respond(std::string_view line) {
  if (line == "*") return Step{Status::cancelled, {}};
  auto decoded = line == "=" ? std::optional<std::string>(std::string()) : base64_decode(line);
  if (!decoded) return Step{Status::bad_base64, {}};
  if (creds_.mechanism == "LOGIN" && step_ == 0) {
    creds_.authcid = std::move(*decoded);
    step_ = 1;
    return Step{Status::challenge, "Password:"};
  }
  return finish(std::move(*decoded));
}

SaslServer::Step SaslServer::finish(std::string decoded) {
  if (creds_.mechanism == "PLAIN") {
    // RFC 4616 §2: [authzid] UTF8NUL authcid UTF8NUL passwd, authcid not empty.
    const std::size_t a = decoded.find('\0');
    const std::size_t b = a == std::string::npos ? a : decoded.find('\0', a + 1);
    if (b == std::string::npos || decoded.find('\0', b + 1) != std::string::npos || b == a + 1) {
      return Step{Status::malformed, {}};
    }
    creds_.authzid = decoded.substr(0, a);
    creds_.authcid = decoded.substr(a + 1, b - a - 1);
    creds_.password = decoded.substr(b + 1);
  } else {
    creds_.password = std::move(decoded);
  }
  return Step{Status::done, {}};
}

}  // namespace refsmtp::core
