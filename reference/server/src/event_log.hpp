#pragma once
// refsmtpd's log: one line per event on stderr, "refsmtpd event=NAME k=v ..." or a JSON object
// with a timestamp, or every event handed to a hook (when refsmtpd is embedded).
#include <functional>
#include <string>
#include <string_view>

#include "refsmtp/net/connection.hpp"

namespace refsmtp::server {

class EventLog {
 public:
  using Hook = std::function<void(std::string_view event, const net::LogFields& fields)>;
  EventLog(bool json, Hook hook) : json_(json), hook_(std::move(hook)) {}
  // Thread-safe: a line is written with one fwrite.
  void write(std::string_view event, const net::LogFields& fields) const;

 private:
  bool json_;
  Hook hook_;
};

}  // namespace refsmtp::server
