#pragma once
// Runs conformance scripts against a server on a host:port and reports per RFC requirement.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "refsmtp/conform/delivery.hpp"
#include "refsmtp/conform/script.hpp"

namespace refsmtp::conform {

// How the runner reaches the target: in the clear; TLS from the first byte (e.g. port 465); or
// STARTTLS first (greeting, EHLO, STARTTLS, handshake), after which each case runs over TLS from
// its own EHLO on -- its greeting step is taken as the one already received.
enum class TlsMode { none, implicit, starttls };

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;  // 0: not given
};

struct Target {
  std::string host = "127.0.0.1";
  std::uint16_t port = 25;
  TlsMode tls = TlsMode::none;
  Endpoint submission;   // "# port: submission" cases (STARTTLS is up to the case)
  Endpoint submissions;  // "# port: submissions" cases (implicit TLS)
  std::chrono::milliseconds step_timeout{10000};
  std::chrono::milliseconds settle{500};  // DELIVERED: how long the count must stay put
  DeliveryStore* delivery = nullptr;      // where DELIVERED:/BODY: look; none: those cases skip
  std::map<std::string, std::string> profile;  // variables for ${...}
};

// Parses HOST:PORT or [IPv6]:PORT; false with an explanation when malformed.
bool parse_endpoint(const std::string& text, Endpoint& out, std::string& error);

// Why a case cannot run against this target ("" when it can): a port or delivery check it
// needs was not configured.
std::string unavailable(const Script& script, const Target& target);

enum class Outcome { pass, fail, skip, error };
std::string_view outcome_name(Outcome o);

struct CaseResult {
  const Script* script = nullptr;
  Outcome outcome = Outcome::pass;
  std::string reason;      // why it failed or was skipped
  std::string transcript;  // what was sent (C:) and received (S:)
  std::string sent;        // every octet sent, in order (a fuzz seed when the case passes)
  double seconds = 0;
};

CaseResult run_case(const Script& script, const Target& target);

// Reports: "text" (per RFC summary), "junit" (JUnit XML), "json", "tap".
std::string report(const std::vector<CaseResult>& results, const std::string& format, const Target& target);

// The profile file: "name = value" lines, "#" comments. Defaults for anything not given.
std::map<std::string, std::string> default_profile();
bool parse_profile(const std::string& text, const std::string& file, std::map<std::string, std::string>& out, std::string& error);

}  // namespace refsmtp::conform
