#pragma once
// Hands a message to an external MDA over LMTP (RFC 2033): the core's ClientSession in LMTP mode
// driven over a blocking socket with timeouts. One result per recipient, as the LMTP server
// reported it after the data.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "refsmtp/smtp/client_session.hpp"

namespace refsmtp::delivery {

struct LmtpEndpoint {
  std::string host = "127.0.0.1";  // a numeric address: no name lookups here
  std::uint16_t port = 24;
  std::string unix_path;           // when set, a Unix socket instead of TCP
};

struct LmtpOptions {
  std::string lhlo_name = "localhost";
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

struct LmtpOutcome {
  std::vector<smtp::RecipientResult> results;  // one per recipient, in order
  std::string error;                           // set when the connection failed
};

LmtpOutcome lmtp_deliver(const LmtpEndpoint& endpoint, const smtp::OutgoingMessage& message, const LmtpOptions& options);

// The same over plain SMTP (or LMTP with config.lmtp): one message, one connection, blocking.
// No TLS on this path: a STARTTLS the policy asks for fails the connection (use TlsPolicy::none).
LmtpOutcome send_message(const LmtpEndpoint& endpoint, const smtp::ClientConfig& config,
                         const smtp::OutgoingMessage& message, std::chrono::milliseconds connect_timeout);

}  // namespace refsmtp::delivery
