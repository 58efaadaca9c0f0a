// Reports (text, JUnit, JSON, TAP) and the baseline of known results (--expect).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "matchers.hpp"
#include "refsmtp/conform/runner.hpp"

namespace refsmtp::conform {

namespace {

// Text for XML 1.0: markup escaped; control characters other than TAB and LF, and octets that
// are not well-formed UTF-8 (a server may echo anything), become '?', so the report always parses.
std::string xml(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t len = c >= 0xF5 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
      bool ok = len > 0 && i + len <= s.size();
      for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (ok && len == 3) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
        ok = ok && !(c == 0xEF && c1 == 0xBF && (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xBE);  // U+FFFE/FFFF
      }
      if (ok && len == 4) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
      }
      if (!ok) {
        out += '?';
        continue;
      }
      out.append(s.substr(i, len));
      i += len - 1;
      continue;
    }
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += (c < 32 && c != '\n' && c != '\t') ? '?' : static_cast<char>(c);
    }
  }
  return out;
}

std::string rfc_of(const Script& s) {
  // "RFC 5321 §4.1.4" -> "RFC 5321"
  const std::size_t sec = s.rfc.find(" §");
  return sec == std::string::npos ? s.rfc : s.rfc.substr(0, sec);
}

std::string indent(std::string t, const std::string& by) {
  std::size_t pos = 0;
  while ((pos = t.find('\n', pos)) != std::string::npos && pos + 1 < t.size()) t.insert(++pos, by);
  return by + t;
}

std::string text_report(const std::vector<CaseResult>& results, const std::string& where) {
  // Per RFC: "N of M" per level, counting only cases that were judged (pass, fail, deviation).
  std::map<std::string, std::map<Level, std::pair<int, int>>> tally;
  std::map<std::string, int> inconclusive_by_rfc, skipped_by_rfc;
  std::map<Outcome, int> totals;
  std::map<Level, int> failed_by_level;
  for (const auto& r : results) {
    ++totals[r.outcome];
    if (r.outcome == Outcome::fail) ++failed_by_level[r.script->level];
    if (r.outcome == Outcome::inconclusive) ++inconclusive_by_rfc[rfc_of(*r.script)];
    if (r.outcome == Outcome::skip) ++skipped_by_rfc[rfc_of(*r.script)];
    tally[rfc_of(*r.script)];  // every RFC gets its line, even one whose cases all skipped
    if (r.outcome != Outcome::pass && r.outcome != Outcome::fail && r.outcome != Outcome::deviation) continue;
    auto& t = tally[rfc_of(*r.script)][r.script->level];
    t.second++;
    if (r.outcome == Outcome::pass) t.first++;
  }
  std::string out = "smtpconform against " + where + "\n\n";
  for (const auto& [rfc, levels] : tally) {
    out += rfc + ":";
    for (const auto& [level, t] : levels) {
      out += "  " + std::to_string(t.first) + " of " + std::to_string(t.second) +
             (level == Level::note ? std::string(" notes held") : " " + std::string(level_name(level)));
    }
    if (levels.empty()) out += "  nothing judged";
    if (inconclusive_by_rfc.count(rfc)) out += "  (" + std::to_string(inconclusive_by_rfc[rfc]) + " inconclusive)";
    if (skipped_by_rfc.count(rfc)) out += "  (" + std::to_string(skipped_by_rfc[rfc]) + " skipped)";
    out += "\n";
  }
  out += "\nTotals: " + std::to_string(results.size()) + " cases: " + std::to_string(totals[Outcome::pass]) + " pass, " +
         std::to_string(totals[Outcome::fail]) + " fail";
  if (totals[Outcome::fail]) {
    std::string by;
    for (const auto& [level, n] : failed_by_level) by += (by.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(level_name(level));
    out += " (" + by + ")";
  }
  out += ", " + std::to_string(totals[Outcome::deviation]) + " deviation, " + std::to_string(totals[Outcome::inconclusive]) +
         " inconclusive, " + std::to_string(totals[Outcome::skip]) + " skip, " + std::to_string(totals[Outcome::error]) + " error\n";

  auto section = [&](Outcome o, const std::string& label, bool with_transcript) {
    for (const auto& r : results) {
      if (r.outcome != o) continue;
      out += "\n" + label + " [" + std::string(level_name(r.script->level)) + "] " + r.script->name + " (" + r.script->rfc + "): " +
             r.script->title + "\n";
      if (!r.script->quote.empty() && o != Outcome::error) out += "  RFC: \"" + r.script->quote + "\"\n";
      out += "  " + r.reason + "\n";
      if (with_transcript && !r.transcript.empty()) out += indent(r.transcript, "    ");
    }
  };
  section(Outcome::fail, "FAIL", true);
  section(Outcome::error, "ERROR", true);
  section(Outcome::deviation, "DEVIATION", true);
  section(Outcome::inconclusive, "INCONCLUSIVE", true);
  bool skip_header = false;
  for (const auto& r : results) {
    if (r.outcome != Outcome::skip) continue;
    if (!skip_header) out += "\nSkipped:\n";
    skip_header = true;
    out += "  " + r.script->name + " (" + r.script->rfc + "): " + r.reason + "\n";
  }
  return out;
}

std::string junit_report(const std::vector<CaseResult>& results, const std::string& where) {
  // JUnit knows pass, failure, error and skipped. A deviation (a NOTE case that did not
  // hold) is not a failed requirement, so it is a passing testcase whose output says DEVIATION; an inconclusive case
  // was never judged, so it is skipped with the reason.
  std::map<std::string, std::vector<const CaseResult*>> by_rfc;
  for (const auto& r : results) by_rfc[rfc_of(*r.script)].push_back(&r);
  int all_failures = 0, all_errors = 0, all_skipped = 0;
  double all_time = 0;
  std::string suites;
  for (const auto& [rfc, rs] : by_rfc) {
    int failures = 0, errors = 0, skipped = 0;
    double time = 0;
    for (const auto* r : rs) {
      failures += r->outcome == Outcome::fail;
      errors += r->outcome == Outcome::error;
      skipped += r->outcome == Outcome::skip || r->outcome == Outcome::inconclusive;
      time += r->seconds;
    }
    all_failures += failures;
    all_errors += errors;
    all_skipped += skipped;
    all_time += time;
    std::string& out = suites;
    out += "  <testsuite name=\"" + xml(rfc) + "\" tests=\"" + std::to_string(rs.size()) + "\" failures=\"" + std::to_string(failures) +
           "\" errors=\"" + std::to_string(errors) + "\" skipped=\"" + std::to_string(skipped) + "\" time=\"" + std::to_string(time) + "\">\n";
    for (const auto* r : rs) {
      out += "    <testcase classname=\"" + xml(r->script->rfc) + "\" name=\"" +
             xml(std::string(level_name(r->script->level)) + " " + r->script->name) + "\" file=\"" + xml(r->script->file) +
             "\" time=\"" + std::to_string(r->seconds) + "\"";
      if (r->outcome == Outcome::pass) {
        out += "/>\n";
        continue;
      }
      out += ">\n";
      const std::string quote = r->script->quote.empty() ? "" : "\nRFC: \"" + r->script->quote + "\"";
      switch (r->outcome) {
        case Outcome::skip: out += "      <skipped message=\"" + xml(r->reason) + "\"/>\n"; break;
        case Outcome::inconclusive: out += "      <skipped message=\"" + xml("inconclusive: " + r->reason) + "\"/>\n"; break;
        case Outcome::fail: out += "      <failure message=\"" + xml(r->reason) + "\">" + xml(r->script->title + quote) + "</failure>\n"; break;
        case Outcome::error: out += "      <error message=\"" + xml(r->reason) + "\"/>\n"; break;
        default: break;
      }
      if (r->outcome == Outcome::deviation) {
        out += "      <system-out>" + xml("DEVIATION: " + r->reason + quote + "\n" + r->transcript) + "</system-out>\n";
      } else if (r->outcome != Outcome::skip) {
        out += "      <system-out>" + xml(r->transcript) + "</system-out>\n";
      }
      out += "    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"smtpconform " + xml(where) + "\" tests=\"" +
         std::to_string(results.size()) + "\" failures=\"" + std::to_string(all_failures) + "\" errors=\"" + std::to_string(all_errors) +
         "\" skipped=\"" + std::to_string(all_skipped) + "\" time=\"" + std::to_string(all_time) + "\">\n" + suites + "</testsuites>\n";
}

}  // namespace

std::string report(const std::vector<CaseResult>& results, const std::string& format, const Target& target) {
  const std::string where = target.host + ":" + std::to_string(target.port);
  if (format == "json") {
    nlohmann::ordered_json j;
    j["target"] = where;
    nlohmann::ordered_json totals;
    for (Outcome o : {Outcome::pass, Outcome::fail, Outcome::deviation, Outcome::inconclusive, Outcome::skip, Outcome::error}) {
      totals[std::string(outcome_name(o))] = std::count_if(results.begin(), results.end(), [&](const CaseResult& r) { return r.outcome == o; });
    }
    j["totals"] = totals;
    j["cases"] = nlohmann::json::array();
    for (const auto& r : results) {
      j["cases"].push_back({{"case", r.script->name}, {"rfc", r.script->rfc}, {"level", level_name(r.script->level)},
                            {"quote", r.script->quote}, {"title", r.script->title}, {"outcome", outcome_name(r.outcome)},
                            {"reason", r.reason}, {"file", r.script->file}, {"seconds", r.seconds}, {"transcript", r.transcript}});
    }
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (format == "tap") {
    // TAP has only SKIP and TODO: an inconclusive case is a SKIP with its reason; a deviation
    // NOTE case is a TODO (a known deviation that fails no requirement).
    std::string out = "TAP version 13\n1.." + std::to_string(results.size()) + "\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      const bool bad = r.outcome == Outcome::fail || r.outcome == Outcome::error || r.outcome == Outcome::deviation;
      out += std::string(bad ? "not ok " : "ok ") + std::to_string(i + 1) + " - [" + std::string(level_name(r.script->level)) + "] " +
             r.script->rfc + " " + r.script->name;
      if (r.outcome == Outcome::skip) out += " # SKIP " + r.reason;
      if (r.outcome == Outcome::inconclusive) out += " # SKIP inconclusive: " + r.reason;
      if (r.outcome == Outcome::deviation) out += " # TODO deviation: " + r.reason;
      out += "\n";
      if (r.outcome == Outcome::fail || r.outcome == Outcome::error) out += "  # " + r.reason + "\n";
    }
    return out;
  }
  if (format == "junit") return junit_report(results, where);
  return text_report(results, where);
}

bool parse_baseline(const std::string& text, const std::string& file, Baseline& out, std::string& error) {
  std::size_t lineno = 0, pos = 0;
  while (pos < text.size()) {
    ++lineno;
    const std::size_t lf = text.find('\n', pos);
    std::string line = text.substr(pos, lf == std::string::npos ? std::string::npos : lf - pos);
    pos = lf == std::string::npos ? text.size() : lf + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string where = file + ":" + std::to_string(lineno) + ": ";
    const std::size_t sp = line.find(' '), colon = line.find(':');
    if (sp == std::string::npos || colon == std::string::npos || colon < sp) {
      error = where + "expected 'case-name outcome: reason'";
      return false;
    }
    const std::string name = line.substr(0, sp), outcome = line.substr(sp + 1, colon - sp - 1);
    std::string reason = line.substr(colon + 1);
    while (!reason.empty() && reason.front() == ' ') reason.erase(0, 1);
    const auto o = parse_outcome(outcome);
    if (!o || *o == Outcome::pass) {
      error = where + "outcome '" + outcome + "' is not fail, deviation, inconclusive, skip or error";
      return false;
    }
    if (reason.empty()) {
      error = where + "give the reason (the quoted sentence it breaks and what the transcript shows)";
      return false;
    }
    if (out.count(name)) {
      error = where + "case '" + name + "' is listed twice";
      return false;
    }
    out[name] = {*o, reason};
  }
  return true;
}

std::string compare_with_baseline(const std::vector<CaseResult>& results, const Baseline& baseline, bool every_case_ran,
                                  bool skips_count) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& r : results) {
    seen.insert(r.script->name);
    const auto it = baseline.find(r.script->name);
    const bool judged_bad = r.outcome != Outcome::pass && (r.outcome != Outcome::skip || skips_count);
    if (it == baseline.end()) {
      if (judged_bad) out += "new " + std::string(outcome_name(r.outcome)) + ": " + r.script->name + ": " + r.reason + "\n";
    } else if (r.outcome == Outcome::skip && it->second.outcome != Outcome::skip) {
      out += "was " + std::string(outcome_name(it->second.outcome)) + ", now skipped: " + r.script->name + ": " + r.reason + "\n";
    } else if (r.outcome != it->second.outcome) {
      out += "was " + std::string(outcome_name(it->second.outcome)) + ", now " + std::string(outcome_name(r.outcome)) + ": " +
             r.script->name + (r.reason.empty() ? "" : ": " + r.reason) + "\n";
    }
  }
  for (const auto& [name, e] : baseline) {
    if (every_case_ran && !seen.count(name)) out += "listed but not run: " + name + " (" + std::string(outcome_name(e.outcome)) + ")\n";
  }
  return out;
}

bool parse_fail_on(const std::string& text, FailOn& out, std::string& error) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    const std::string word = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (word == "should") out.should = true;
    else if (word == "may") out.may = true;
    else if (word == "deviation") out.deviation = true;
    else if (word == "inconclusive") out.inconclusive = true;
    else if (word == "skip") out.skip = true;
    else if (word == "all") out = {true, true, true, true, true};
    else if (!word.empty() || text.empty()) {
      error = "--fail-on '" + word + "': expected a comma-separated list of should, may, deviation, inconclusive, skip (or all)";
      return false;
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return true;
}

bool run_failed(const std::vector<CaseResult>& results, const FailOn& f) {
  return std::any_of(results.begin(), results.end(), [&](const CaseResult& r) {
    switch (r.outcome) {
      case Outcome::error: return true;
      case Outcome::fail:
        return r.script->level == Level::must || (r.script->level == Level::should && f.should) || (r.script->level == Level::may && f.may);
      case Outcome::deviation: return f.deviation;
      case Outcome::inconclusive: return f.inconclusive;
      case Outcome::skip: return f.skip;
      case Outcome::pass: return false;
    }
    return false;
  });
}

}  // namespace refsmtp::conform
