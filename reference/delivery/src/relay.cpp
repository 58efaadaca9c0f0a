#include "refsmtp/delivery/relay.hpp"

namespace refsmtp::delivery {

namespace {

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != name[i]) return false;
  }
  return true;
}

}  // namespace

std::size_t count_received_headers(std::string_view message) {
  std::size_t count = 0;
  std::size_t pos = 0;
  while (pos < message.size()) {
    std::size_t end = message.find('\n', pos);
    if (end == std::string_view::npos) end = message.size();
    std::string_view line = message.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header section
    if (iequals_prefix(line, "received")) {
      std::string_view rest = line.substr(8);
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);  // RFC 5322 obs-FWS
      if (!rest.empty() && rest.front() == ':') ++count;
    }
    pos = end + 1;
  }
  return count;
}

queue::DeliveryOutcome to_outcome(std::size_t recipient, const smtp::RecipientResult& result, const std::string& remote) {
  const auto state = result.status == smtp::DeliveryStatus::delivered ? queue::RecipientState::delivered
                     : result.status == smtp::DeliveryStatus::failed  ? queue::RecipientState::failed
                                                                      : queue::RecipientState::pending;
  return queue::DeliveryOutcome{recipient, state, result.reply, remote};
}

}  // namespace refsmtp::delivery
