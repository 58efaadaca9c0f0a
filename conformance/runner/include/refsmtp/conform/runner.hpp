#pragma once
// Runs conformance scripts against a server on a host:port and reports per RFC requirement.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "refsmtp/conform/delivery.hpp"
#include "refsmtp/conform/script.hpp"
#include "refsmtp/conform/transport.hpp"

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
  Connector connector;                         // how to reach it (empty: TCP, connect_tcp)
};

// Parses HOST:PORT or [IPv6]:PORT; false with an explanation when malformed.
bool parse_endpoint(const std::string& text, Endpoint& out, std::string& error);

// Why a case cannot run against this target ("" when it can): a port or delivery check it
// needs was not configured.
std::string unavailable(const Script& script, const Target& target);

// pass: every step that asserts the rule went as written.
// fail: a step that asserts the rule did not (a MUST, SHOULD or MAY case).
// deviation: the same for a NOTE case, where no keyword binds the server: it accepted what the
//          grammar does not allow (a leniency), or did not do what the RFC describes without a
//          keyword; reported apart, never a failed requirement.
// inconclusive: the rule was never exercised: a setup step did not go as the case needs, or the
//          server ended the session with 421.
// skip: not run (a port, delivery store or extension it needs is not there).
// error: the runner could not run it (connection refused, a variable missing from the profile).
enum class Outcome { pass, fail, deviation, inconclusive, skip, error };
std::string_view outcome_name(Outcome o);
std::optional<Outcome> parse_outcome(std::string_view name);

struct CaseResult {
  const Script* script = nullptr;
  Outcome outcome = Outcome::pass;
  std::string reason;      // why it failed, was inconclusive or was skipped
  std::string transcript;  // what was sent (C:) and received (S:)
  std::string sent;        // every octet sent, in order (a fuzz seed when the case passes)
  double seconds = 0;
};

CaseResult run_case(const Script& script, const Target& target);

// A baseline of known results (--expect FILE): "case-name outcome: reason" lines, "#" comments.
// outcome is fail, deviation, inconclusive, error or skip; every other case is expected to pass
// (or to skip, unless skips count: --fail-on skip).
struct Expectation {
  Outcome outcome = Outcome::fail;
  std::string reason;
};
using Baseline = std::map<std::string, Expectation>;
bool parse_baseline(const std::string& text, const std::string& file, Baseline& out, std::string& error);
// What differs from the baseline, one line each ("" when nothing does). With every_case_ran
// (no --filter or --level), a listed case that was not run at all is a difference too; with
// skips_count, so is a skip the baseline does not list.
std::string compare_with_baseline(const std::vector<CaseResult>& results, const Baseline& baseline, bool every_case_ran,
                                  bool skips_count = false);

// --fail-on: which results fail a run besides a failed MUST case and an error.
struct FailOn {
  bool should = false, may = false, deviation = false, inconclusive = false, skip = false;
};
// "should,skip" -> FailOn; false with `error` set for an unknown word.
bool parse_fail_on(const std::string& text, FailOn& out, std::string& error);
// Whether these results fail the run (without a baseline).
bool run_failed(const std::vector<CaseResult>& results, const FailOn& fail_on);

// Reports: "text" (per RFC summary), "junit" (JUnit XML), "json", "tap".
std::string report(const std::vector<CaseResult>& results, const std::string& format, const Target& target);

// The profile file: "name = value" lines, "#" comments; a name the runner does not know is an
// error naming the file and line. Defaults for anything not given.
std::map<std::string, std::string> default_profile();
const std::vector<std::pair<std::string, std::string>>& profile_keys();  // name, what it means
bool parse_profile(const std::string& text, const std::string& file, std::map<std::string, std::string>& out, std::string& error);

}  // namespace refsmtp::conform
