#pragma once
// Pure pieces of relaying that need no network: loop detection by counting Received: headers
// (RFC 5321 §6.3), and turning a next hop's per-recipient results into queue outcomes.
#include <cstddef>
#include <string>
#include <string_view>

#include "refsmtp/smtp/client_session.hpp"
#include "refsmtp/queue/queue.hpp"

namespace refsmtp::delivery {

// "SMTP servers using this technique SHOULD use a large rejection threshold, normally at least
// 100 Received entries" (RFC 5321 §6.3).
inline constexpr std::size_t kDefaultMaxReceived = 100;

// The number of Received: header fields in the message's header section (up to the first empty
// line), matched case-insensitively; folded continuation lines are not counted.
std::size_t count_received_headers(std::string_view message);

// The queue's view of one recipient's result at a next hop: delivered, failed (5xx) or pending
// (4xx, timeouts, network failures), with the reply as one line of text for the DSN.
queue::DeliveryOutcome to_outcome(std::size_t recipient, const smtp::RecipientResult& result, const std::string& remote = {});


}  // namespace refsmtp::delivery
