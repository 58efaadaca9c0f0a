#include "event_log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace refsmtp::server {

namespace {

std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms));
  return out;
}

// Fields that are counts, sizes or durations: numbers in JSON (everything else is a string, even
// when it looks like a number, such as a queue id).
bool numeric_field(std::string_view key, std::string_view value) {
  static constexpr std::string_view keys[] = {"conn", "rcpts", "size", "delay", "queued", "port", "connections", "signal"};
  if (value.empty() || value.size() > 18) return false;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
  }
  for (auto k : keys) {
    if (k == key) return true;
  }
  return false;
}

}  // namespace

void EventLog::write(std::string_view event, const net::LogFields& fields) const {
  if (hook_) {
    hook_(event, fields);
    return;
  }
  std::string line;
  if (json_) {
    nlohmann::ordered_json j;
    j["ts"] = rfc3339_now();
    j["event"] = event;
    for (const auto& [k, v] : fields) {
      if (numeric_field(k, v)) {
        j[k] = std::stoll(v);
      } else {
        j[k] = v;
      }
    }
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = "refsmtpd event=" + std::string(event);
    for (const auto& [k, v] : fields) {
      const bool quote = v.empty() || v.find_first_of(" \"=") != std::string::npos;
      line += " " + k + "=";
      if (!quote) {
        line += v;
        continue;
      }
      line += '"';
      for (char ch : v) {
        if (ch == '"' || ch == '\\') line += '\\';
        line += (static_cast<unsigned char>(ch) < 32) ? '?' : ch;
      }
      line += '"';
    }
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace refsmtp::server
