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

// EHLO keywords the target advertises before TLS, to skip cases whose needs are not offered.
std::set<std::string> probe_capabilities(const Target& target) {
  Script probe;
  probe.name = "probe";
  probe.file = "(probe)";
  Step s1{Step::Kind::expect, "", {}, 0, 0};
  s1.expect.codes = {"2xx"};
  Step c{Step::Kind::send, "EHLO " + target.profile.at("helo"), {}, 0, 0};
  Step s2 = s1;
  Step q{Step::Kind::send, "QUIT", {}, 0, 0};
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
  std::vector<std::string> inputs;
  unsigned jobs = 4, timeout_ms = 10000;
  app.add_option("--target", target_text, "HOST:PORT of the server under test")->capture_default_str();
  app.add_option("--tls", tls, "none; implicit (TLS from the first byte, e.g. port 465); or starttls (every case runs\n"
                 "over TLS after an EHLO + STARTTLS the runner does first)")
      ->check(CLI::IsMember({"none", "implicit", "starttls"}))->capture_default_str();
  app.add_option("--profile", profile_file, "variables for the scripts (name = value lines)")->check(CLI::ExistingFile);
  app.add_option("--filter", filter, "run only cases whose name or file matches this glob")->capture_default_str();
  app.add_option("--level", level, "lowest requirement level to run: must, should or may")
      ->check(CLI::IsMember({"must", "should", "may"}))->capture_default_str();
  app.add_option("--format", format, "report format")->check(CLI::IsMember({"text", "junit", "json", "tap"}))->capture_default_str();
  app.add_option("--output", output, "write the report here instead of standard output");
  app.add_option("--jobs", jobs, "dialogs run in parallel")->check(CLI::Range(1u, 64u))->capture_default_str();
  app.add_option("--timeout", timeout_ms, "milliseconds to wait for each reply")->capture_default_str();
  app.add_option("SUITE_OR_CASE", inputs, "suite directories or .smtp case files")->required();
  CLI11_PARSE(app, argc, argv);

  Target target;
  const std::size_t colon = target_text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    std::fprintf(stderr, "smtpconform: --target '%s': expected HOST:PORT\n", target_text.c_str());
    return 2;
  }
  target.host = target_text.substr(0, colon);
  if (target.host.size() > 2 && target.host.front() == '[') target.host = target.host.substr(1, target.host.size() - 2);
  target.port = static_cast<std::uint16_t>(std::atoi(target_text.c_str() + colon + 1));
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

  const auto caps = probe_capabilities(target);
  std::vector<CaseResult> results(scripts.size());
  std::atomic<std::size_t> next{0}, done{0};
  std::mutex progress_m;
  const bool tty = ::isatty(STDERR_FILENO);
  auto worker = [&] {
    for (std::size_t i = next++; i < scripts.size(); i = next++) {
      const Script& s = scripts[i];
      std::string missing;
      for (const auto& need : s.needs) {
        if (!caps.count(need)) missing += (missing.empty() ? "" : ", ") + need;
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

  const std::string text = report(results, format, target);
  if (output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    std::ofstream(output) << text;
  }
  const bool must_failed = std::any_of(results.begin(), results.end(), [](const CaseResult& r) {
    return r.script->level == Level::must && (r.outcome == Outcome::fail || r.outcome == Outcome::error);
  });
  return must_failed ? 1 : 0;
}
