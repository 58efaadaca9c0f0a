// smtpconform: replays scripted SMTP dialogs against any server and reports per RFC requirement.
#include <fnmatch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "matchers.hpp"
#include "refsmtp/conform/runner.hpp"
#include "refsmtp/core/text.hpp"

namespace fs = std::filesystem;
using namespace refsmtp::conform;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What a port advertises: the EHLO keywords ("PIPELINING") and keyword parameters
// ("AUTH=PLAIN"), before and (where STARTTLS is offered, as on a submission port) after TLS,
// since most servers list AUTH only inside TLS. Also the greeting's first word, the server's
// name, from which a missing profile is derived.
struct Probe {
  bool reached = false;
  std::string error;     // why the port could not be probed
  std::string greeting;  // the 220 line
  std::set<std::string> caps;
};

Probe probe_port(const Target& target, const std::string& port) {
  Probe p;
  Endpoint at{target.host, target.port};
  bool implicit = target.tls == TlsMode::implicit, starttls = target.tls == TlsMode::starttls;
  if (port == "submission") {
    at = target.submission;
    implicit = false;
    starttls = true;
  } else if (port == "submissions") {
    at = target.submissions;
    implicit = true;
  }
  auto conn = target.connector ? target.connector(at.host, at.port, target.step_timeout, p.error)
                               : connect_tcp(at.host, at.port, target.step_timeout, p.error);
  if (!conn) return p;
  if (implicit && !conn->start_tls(p.error)) return p;
  const ReadResult greeting = conn->read_reply(target.step_timeout);
  if (greeting.lines.empty()) {
    p.error = greeting.closed ? "closed the connection without a greeting" : "sent no greeting";
    return p;
  }
  p.reached = true;
  p.greeting = greeting.lines.front();
  auto ehlo = [&] {
    conn->send("EHLO " + target.profile.at("helo") + "\r\n");
    const ReadResult reply = conn->read_reply(target.step_timeout);
    if (reply.lines.empty() || !reply.lines.front().starts_with("250")) return false;
    for (const auto& kw : refsmtp::conform::detail::ehlo_keywords(reply.lines)) {
      p.caps.insert(kw);
      for (const auto& param : refsmtp::conform::detail::ehlo_params(reply.lines, kw)) p.caps.insert(kw + "=" + param);
    }
    return true;
  };
  if (ehlo() && starttls && p.caps.count("STARTTLS")) {
    conn->send("STARTTLS\r\n");
    const ReadResult ready = conn->read_reply(target.step_timeout);
    std::string tls_error;
    if (!ready.lines.empty() && ready.lines.front().starts_with("220") && conn->start_tls(tls_error)) ehlo();
  }
  conn->send("QUIT\r\n");
  conn->read_reply(std::chrono::milliseconds(1000));
  return p;
}

// The option named most like `word` ("--listne" -> "--list"), or "" when none is within two edits.
std::string nearest_option(const CLI::App& app, const std::string& word) {
  if (!word.starts_with("--")) return "";
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& name : o->get_lnames()) names.push_back("--" + name);
  }
  return refsmtp::core::nearest(word.substr(0, word.find('=')), names);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"smtpconform - replay RFC-cited SMTP dialogs against a server and report per requirement"};
  app.set_version_flag("--version", "smtpconform 0.1.0");
  std::string target_text = "127.0.0.1:25", tls = "none", profile_file, filter = "*", level = "note", format = "text", output;
  std::string submission_text, submissions_text, maildir, sink_text, seeds_dir;
  std::vector<std::string> inputs;
  unsigned jobs = 4, timeout_ms = 10000, settle_ms = 500;
  app.add_option("--target", target_text, "HOST:PORT of the server under test")->capture_default_str();
  app.add_option("--submission", submission_text, "HOST:PORT of its submission port (RFC 6409; cases with '# port: submission')");
  app.add_option("--submissions", submissions_text, "HOST:PORT of its implicit-TLS submission port (RFC 8314)");
  app.add_option("--maildir", maildir, "delivery checks: the target delivers into Maildirs below this folder")->check(CLI::ExistingDirectory);
  app.add_option("--sink", sink_text, "delivery checks: listen here as the next hop the target relays deliver_rcpt's domain to\n"
                 "(the profile must then set deliver_rcpt)");
  app.add_option("--settle", settle_ms, "delivery checks: milliseconds a message count must stay put")->capture_default_str();
  app.add_option("--export-seeds", seeds_dir, "write the octets each passing case sent to this folder (fuzz seeds)");
  app.add_option("--tls", tls, "none; implicit (TLS from the first byte, e.g. port 465); or starttls (every case runs\n"
                 "over TLS after an EHLO + STARTTLS the runner does first)")
      ->check(CLI::IsMember({"none", "implicit", "starttls"}))->capture_default_str();
  std::string profile_help = "what the server treats as valid, 'name = value' lines (without it, the domain is taken\n"
                             "from the server's greeting and the assumptions are printed). Keys:";
  for (const auto& [k, what] : profile_keys()) profile_help += "\n  " + k + ": " + what;
  app.add_option("--profile", profile_file, profile_help)->check(CLI::ExistingFile);
  std::string expect_file, fail_on_text;
  bool partial = false;
  app.add_flag("--partial", partial, "with --expect: this run is a part of the suites, so a case the baseline lists\n"
               "that did not run is not a difference (implied by --filter and --level)");
  app.add_option("--fail-on", fail_on_text, "also fail the run on these results (comma-separated): should, may (failed cases of\n"
                 "that level), deviation, inconclusive, skip; or all. A failed MUST case or an error always fails it.\n"
                 "With --expect, 'skip' makes every skip the baseline does not list a difference");
  app.add_option("--expect", expect_file, "a baseline of known results, 'case-name outcome: reason' lines (outcome: fail,\n"
                 "deviation, inconclusive or error); the run then fails only when a result differs from it")
      ->check(CLI::ExistingFile);
  app.add_option("--filter", filter, "run only cases whose name or file matches this glob")->capture_default_str();
  app.add_option("--level", level, "lowest requirement level to run: must, should, may or note (every case)")
      ->check(CLI::IsMember({"must", "should", "may", "note"}))->capture_default_str();
  app.add_option("--format", format, "report format")->check(CLI::IsMember({"text", "junit", "json", "tap"}))->capture_default_str();
  app.add_option("--output", output, "write the report here instead of standard output");
  std::vector<std::string> extra_reports;
  app.add_option("--report", extra_reports, "also write a report in another format, e.g. --report junit=results.xml\n"
                 "(repeatable; formats: text, junit, json, tap)");
  app.add_option("--jobs", jobs, "dialogs run in parallel")->check(CLI::Range(1u, 64u))->capture_default_str();
  app.add_option("--timeout", timeout_ms, "milliseconds to wait for each reply")->capture_default_str();
  app.add_option("SUITE_OR_CASE", inputs, "suite directories or .smtp case files")->required();
  app.footer("Exit status: 0 when no MUST case failed, nothing was an error, and nothing --fail-on names happened\n"
             "(with --expect: when every result is as the baseline says); 1 otherwise; 2 on usage errors; 3 when\n"
             "the target cannot be reached.\n"
             "Verdicts: pass; fail (a step marked '!' broke the quoted MUST/SHOULD/MAY rule); deviation (a NOTE\n"
             "case, where no keyword binds the server, did not hold: a leniency, never a failed requirement);\n"
             "inconclusive (setup did not go as the case needs, or the server closed with 421: the rule was not\n"
             "tested); skip; error (the runner could not run it).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error is exit status 2, as documented (CLI11's
    // own codes, 105-109, mean nothing to a CI script), with the nearest option for a typo.
    if (app.exit(e) == 0) return 0;
    if (const auto* extras = dynamic_cast<const CLI::ExtrasError*>(&e); extras) {
      for (const auto& word : app.remaining()) {
        if (const std::string near = nearest_option(app, word); !near.empty()) std::fprintf(stderr, "smtpconform: did you mean %s?\n", near.c_str());
      }
    }
    return 2;
  }

  std::vector<std::pair<std::string, std::string>> reports;  // format, file
  for (const auto& r : extra_reports) {
    const std::size_t eq = r.find('=');
    const std::string f = r.substr(0, eq);
    if (eq == std::string::npos || eq + 1 == r.size() || (f != "text" && f != "junit" && f != "json" && f != "tap")) {
      std::fprintf(stderr, "smtpconform: --report '%s': expected FORMAT=FILE with FORMAT text, junit, json or tap\n", r.c_str());
      return 2;
    }
    reports.emplace_back(f, r.substr(eq + 1));
  }
  Target target;
  std::string endpoint_error;
  Endpoint main_endpoint;
  if (!parse_endpoint(target_text, main_endpoint, endpoint_error) ||
      (!submission_text.empty() && !parse_endpoint(submission_text, target.submission, endpoint_error)) ||
      (!submissions_text.empty() && !parse_endpoint(submissions_text, target.submissions, endpoint_error))) {
    std::fprintf(stderr, "smtpconform: %s\n", endpoint_error.c_str());
    return 2;
  }
  target.host = main_endpoint.host;
  target.port = main_endpoint.port;
  target.settle = std::chrono::milliseconds(settle_ms);
  target.tls = tls == "implicit" ? TlsMode::implicit : tls == "starttls" ? TlsMode::starttls : TlsMode::none;
  target.step_timeout = std::chrono::milliseconds(timeout_ms);
  target.profile = default_profile();
  if (!profile_file.empty()) {
    std::string error;
    if (!parse_profile(slurp(profile_file), profile_file, target.profile, error)) {
      std::fprintf(stderr, "smtpconform: %s\n", error.c_str());
      return 2;
    }
  }
  FailOn fail_on;
  if (!fail_on_text.empty()) {
    std::string error;
    if (!parse_fail_on(fail_on_text, fail_on, error)) {
      std::fprintf(stderr, "smtpconform: %s\n", error.c_str());
      return 2;
    }
  }
  Baseline baseline;
  if (!expect_file.empty()) {
    std::string error;
    if (!parse_baseline(slurp(expect_file), expect_file, baseline, error)) {
      std::fprintf(stderr, "smtpconform: %s\n", error.c_str());
      return 2;
    }
  }
  // Delivery checks send to deliver_rcpt: by default the profile's rcpt (a local mailbox); with
  // --sink it must be an address the target relays to the sink, so the profile names it.
  std::unique_ptr<DeliveryStore> store;
  if (!maildir.empty() && !sink_text.empty()) {
    std::fprintf(stderr, "smtpconform: give --maildir or --sink, not both\n");
    return 2;
  }
  if (!sink_text.empty()) {
    Endpoint sink_at;
    if (!parse_endpoint(sink_text, sink_at, endpoint_error)) {
      std::fprintf(stderr, "smtpconform: --sink %s\n", endpoint_error.c_str());
      return 2;
    }
    if (!target.profile.count("deliver_rcpt")) {
      std::fprintf(stderr, "smtpconform: --sink needs 'deliver_rcpt = ADDRESS' in the --profile: an address the target relays to the sink\n");
      return 2;
    }
    auto sink = std::make_unique<SinkServer>();
    std::string error;
    if (!sink->start(sink_at.host, sink_at.port, error)) {
      std::fprintf(stderr, "smtpconform: %s\n", error.c_str());
      return 2;
    }
    store = std::move(sink);
  } else if (!maildir.empty()) {
    store = std::make_unique<MaildirStore>(maildir);
  }
  target.delivery = store.get();
  if (!target.profile.count("deliver_rcpt")) target.profile["deliver_rcpt"] = target.profile["rcpt"];

  // Load every case; a script that does not parse is an error with its file and line.
  std::vector<fs::path> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      for (const auto& e : fs::recursive_directory_iterator(in)) {
        if (e.is_regular_file() && e.path().extension() == ".smtp") files.push_back(e.path());
      }
    } else if (fs::is_regular_file(in)) {
      files.emplace_back(in);
    } else {
      std::fprintf(stderr, "smtpconform: %s: no such suite or case\n", in.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  const Level lowest = level == "must" ? Level::must : level == "should" ? Level::should : level == "may" ? Level::may : Level::note;
  std::vector<Script> scripts;
  for (const auto& f : files) {
    ParseError error;
    auto s = parse_script(slurp(f), f.string(), error);
    if (!s) {
      std::fprintf(stderr, "smtpconform: %s\n", error.message.c_str());
      return 2;
    }
    const bool name_match = fnmatch(filter.c_str(), s->name.c_str(), 0) == 0 || fnmatch(filter.c_str(), f.c_str(), 0) == 0;
    if (name_match && static_cast<int>(s->level) <= static_cast<int>(lowest)) scripts.push_back(std::move(*s));
  }
  if (scripts.empty()) {
    std::fprintf(stderr, "smtpconform: no cases selected\n");
    return 2;
  }

  // Probe each port the selected cases use. The main port must answer: without it nothing can
  // be judged, and one clear line beats a connection error per case.
  std::map<std::string, std::set<std::string>> caps;  // per port kind
  {
    const Probe main_probe = probe_port(target, "mx");
    if (!main_probe.reached) {
      std::fprintf(stderr, "smtpconform: cannot reach %s:%u: %s\n", target.host.c_str(), static_cast<unsigned>(target.port),
                   main_probe.error.c_str());
      return 3;
    }
    caps["mx"] = main_probe.caps;
    if (profile_file.empty()) {
      // No profile: the server's own name from its greeting stands for the domain, and its
      // postmaster (RFC 5321 §4.5.1: every server must take mail for it) for the mailbox.
      std::string name = main_probe.greeting.size() > 4 ? main_probe.greeting.substr(4) : "";
      name = name.substr(0, name.find(' '));
      if (name.empty() || name.find('.') == std::string::npos) name = target.profile["domain"];
      target.profile["domain"] = name;
      target.profile["rcpt"] = "postmaster@" + name;
      target.profile["unknown"] = "no-such-user-9z@" + name;
      target.profile["deliver_rcpt"] = target.profile["rcpt"];  // --sink needs a profile, so none is given here
      std::string assumed;
      for (const char* k : {"domain", "rcpt", "unknown", "sender", "remote", "helo", "user"}) {
        assumed += std::string("  ") + k + " = " + target.profile[k] + "\n";
      }
      std::fprintf(stderr,
                   "smtpconform: no --profile given; assumed (the domain from the server's greeting):\n%s"
                   "  write these lines to a file and pass --profile FILE to change them\n",
                   assumed.c_str());
    }
  }
  for (const auto& s : scripts) {
    if (!caps.count(s.port) && unavailable(s, target).empty()) {
      const Probe p = probe_port(target, s.port);
      if (!p.reached) {
        std::fprintf(stderr, "smtpconform: cannot reach the %s port: %s\n", s.port.c_str(), p.error.c_str());
        return 3;
      }
      caps[s.port] = p.caps;
    }
  }
  std::vector<CaseResult> results(scripts.size());
  std::atomic<std::size_t> next{0}, done{0};
  std::mutex progress_m;
  const bool tty = ::isatty(STDERR_FILENO);
  auto worker = [&] {
    for (std::size_t i = next++; i < scripts.size(); i = next++) {
      const Script& s = scripts[i];
      std::string missing;
      const std::string why = unavailable(s, target);
      const auto port_caps = caps.find(s.port);  // read-only here: workers share the map
      for (const auto& need : s.needs) {
        if (why.empty() && (port_caps == caps.end() || !port_caps->second.count(need))) missing += (missing.empty() ? "" : ", ") + need;
      }
      if (!missing.empty()) {
        results[i].script = &s;
        results[i].outcome = Outcome::skip;
        results[i].reason = "not advertised: " + missing;
      } else {
        results[i] = run_case(s, target);
      }
      const std::size_t n = ++done;
      if (tty) {
        std::lock_guard lock(progress_m);
        std::fprintf(stderr, "\r[%zu/%zu] %-50.50s", n, scripts.size(), s.name.c_str());
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned j = 0; j < std::min<std::size_t>(jobs, scripts.size()); ++j) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (tty) std::fprintf(stderr, "\r%70s\r", "");

  if (!seeds_dir.empty()) {
    std::error_code ec;
    fs::create_directories(seeds_dir, ec);
    for (const auto& r : results) {
      if (r.outcome != Outcome::pass || r.sent.empty()) continue;
      std::ofstream out(fs::path(seeds_dir) / (r.script->name + ".bin"), std::ios::binary);
      out.write(r.sent.data(), static_cast<std::streamsize>(r.sent.size()));
      if (!out) {
        std::fprintf(stderr, "smtpconform: cannot write seeds to %s\n", seeds_dir.c_str());
        return 2;
      }
    }
  }
  if (output.empty()) {
    const std::string text = report(results, format, target);
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    reports.insert(reports.begin(), {format, output});
  }
  for (const auto& [f, file] : reports) {
    std::ofstream out(file, std::ios::binary);
    out << report(results, f, target);
    if (!out.flush()) {
      std::fprintf(stderr, "smtpconform: cannot write %s\n", file.c_str());
      return 2;
    }
  }
  std::fflush(stdout);  // the report first, then what the baseline says of it
  if (!expect_file.empty()) {
    const bool every_case_ran = filter == "*" && level == "note" && !partial;
    const std::string drift = compare_with_baseline(results, baseline, every_case_ran, fail_on.skip);
    if (!drift.empty()) {
      std::fprintf(stderr, "smtpconform: results differ from the baseline %s:\n%s", expect_file.c_str(), drift.c_str());
      return 1;
    }
    std::fprintf(stderr, "smtpconform: every result is as the baseline %s says\n", expect_file.c_str());
    return 0;
  }
  return run_failed(results, fail_on) ? 1 : 0;
}
