#pragma once
// The server side of a SASL exchange (RFC 4422) for PLAIN (RFC 4616) and LOGIN, independent of
// the protocol that carries it: SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE
// (RFC 9051 §6.2.2) each wrap challenges in their own syntax ("334 ...", "+ ...") and hand the
// client's response lines here. Checking the password is the host's business, not this one's.
#include <optional>
#include <string>
#include <string_view>

namespace refsmtp::core {

struct SaslCredentials {
  std::string mechanism;  // "PLAIN" or "LOGIN"
  std::string authzid;    // PLAIN's authorization identity; empty: the same as authcid
  std::string authcid;    // who logs in
  std::string password;
};

class SaslServer {
 public:
  enum class Status {
    challenge,   // send `challenge` (base64-encoded by the caller) and read one more response
    done,        // credentials() holds what the client said
    cancelled,   // the client sent "*" (RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2)
    bad_base64,  // a response that is not base64 (RFC 4648 §4, strict)
    malformed,   // decoded, but not what the mechanism allows (e.g. PLAIN without two NULs)
  };
  struct Step {
    Status status = Status::challenge;
    std::string challenge;  // the challenge's text, not yet base64
  };

  static bool supported(std::string_view mechanism);  // exact, upper case: PLAIN, LOGIN

  // Starts `mechanism` (one that is supported), with the client's initial response if it sent
  // one ("=" is an empty one, RFC 4954 §4).
  Step start(std::string_view mechanism, std::optional<std::string_view> initial_response);
  // One response line from the client: base64, "=" (empty) or "*" (cancel).
  Step respond(std::string_view line);

  const SaslCredentials& credentials() const { return creds_; }

 private:
  Step finish(std::string decoded);

  SaslCredentials creds_;
  int step_ = 0;  // LOGIN: 0 waiting for the user name, 1 for the password
};

}  // namespace refsmtp::core
