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

#include "refsmtp/conform/runner.hpp"

namespace fs = std::filesystem;
using namespace refsmtp::conform;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// EHLO keywords a port advertises (after TLS with --tls starttls/implicit; in the clear on the
// submission port), to skip cases whose needs are not offered.
std::set<std::string> probe_capabilities(const Target& target, const std::string& port) {
  Script probe;
  probe.name = "probe";
  probe.file = "(probe)";
  probe.port = port;
  auto step = [](Step::Kind kind, std::string text) {
    Step st{};
    st.kind = kind;
    st.text = std::move(text);
    return st;
  };
  Step s1 = step(Step::Kind::expect, "");
  s1.expect.codes = {"2xx"};
  Step c = step(Step::Kind::send, "EHLO " + target.profile.at("helo"));
  Step s2 = s1;
  Step q = step(Step::Kind::send, "QUIT");
  probe.steps = {s1, c, s2, q};
  const CaseResult r = run_case(probe, target);
  std::set<std::string> caps;
  std::istringstream in(r.transcript);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 7 && line.starts_with("S: 250")) {
      std::string kw = line.substr(7);
      kw = kw.substr(0, kw.find(' '));
      std::transform(kw.begin(), kw.end(), kw.begin(), [](unsigned char ch) { return std::toupper(ch); });
      caps.insert(kw);
    }
  }
  return caps;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"smtpconform - replay RFC-cited SMTP dialogs against a server and report per requirement"};
  app.set_version_flag("--version", "smtpconform 0.1.0");
  std::string target_text = "127.0.0.1:25", tls = "none", profile_file, filter = "*", level = "may", format = "text", output;
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
  app.add_option("--profile", profile_file, "variables for the scripts (name = value lines)")->check(CLI::ExistingFile);
  app.add_option("--filter", filter, "run only cases whose name or file matches this glob")->capture_default_str();
  app.add_option("--level", level, "lowest requirement level to run: must, should or may")
      ->check(CLI::IsMember({"must", "should", "may"}))->capture_default_str();
  app.add_option("--format", format, "report format")->check(CLI::IsMember({"text", "junit", "json", "tap"}))->capture_default_str();
  app.add_option("--output", output, "write the report here instead of standard output");
  std::vector<std::string> extra_reports;
  app.add_option("--report", extra_reports, "also write a report in another format, e.g. --report junit=results.xml\n"
                 "(repeatable; formats: text, junit, json, tap)");
  app.add_option("--jobs", jobs, "dialogs run in parallel")->check(CLI::Range(1u, 64u))->capture_default_str();
  app.add_option("--timeout", timeout_ms, "milliseconds to wait for each reply")->capture_default_str();
  app.add_option("SUITE_OR_CASE", inputs, "suite directories or .smtp case files")->required();
  CLI11_PARSE(app, argc, argv);

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
  const Level lowest = level == "must" ? Level::must : level == "should" ? Level::should : Level::may;
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

  std::map<std::string, std::set<std::string>> caps;  // per port kind
  for (const auto& s : scripts) {
    if (!caps.count(s.port) && unavailable(s, target).empty()) caps[s.port] = probe_capabilities(target, s.port);
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
  const bool must_failed = std::any_of(results.begin(), results.end(), [](const CaseResult& r) {
    return r.script->level == Level::must && (r.outcome == Outcome::fail || r.outcome == Outcome::error);
  });
  return must_failed ? 1 : 0;
}
