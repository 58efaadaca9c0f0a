#pragma once
// The outbound half of the MTA: the core's ClientSession driven over TCP with Boost.Asio, with
// STARTTLS through OpenSSL. Given the next hops for a destination in the order to try (from MX
// resolution or a static route) and the messages for it, it sends them all over one connection
// when it can (connection reuse), moving to the next hop on a connection failure, a greeting that
// is not 2xx, a refused EHLO/HELO, or a TLS failure (RFC 5321 §5.1). Every result is per
// recipient, as the receiving server decided it; this layer makes no queue decisions.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "refsmtp/smtp/client_session.hpp"

namespace refsmtp::net {

struct RelayHop {
  std::string host;     // name for TLS SNI and certificate checks (and logs)
  std::string address;  // numeric
  std::uint16_t port = 25;
};

struct RelayOptions {
  smtp::ClientConfig client;  // our name, TLS policy, AUTH, timeouts (RFC 5321 §4.5.3.2)
  // For STARTTLS. With TlsPolicy::required the peer's certificate chain and host name are
  // verified against this context's trust store; opportunistic TLS does not verify (RFC 7435).
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
};

struct RelayResult {
  // One entry per message given, in order; each has one result per recipient, in order.
  std::vector<std::vector<smtp::RecipientResult>> messages;
  // One line per hop tried, e.g. "mx1.example.test[192.0.2.1]:25 connect: Connection refused".
  std::vector<std::string> log;
};

// Called as soon as a message's results are known (index into the messages given), so the
// caller can record each delivery at once instead of when the connection ends. `remote` names
// the hop whose transaction gave them (its host), or is empty for a message no hop took.
using MessageDone = std::function<void(std::size_t message, const std::vector<smtp::RecipientResult>& results,
                                       const std::string& remote)>;

// Messages that no hop took end deferred with the last failure, or failed when every hop tried
// refused permanently (a 5xx greeting, or EHLO and HELO both refused). With opportunistic TLS a
// hop whose handshake fails is tried once more without TLS.
boost::asio::awaitable<RelayResult> relay_messages(std::vector<RelayHop> hops, std::vector<smtp::OutgoingMessage> messages,
                                                   RelayOptions options, MessageDone on_message = {});

// A client TLS context: TLS 1.2 or later; trusts `ca_file` (PEM) or, when empty, the system's
// default trust store.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(const std::string& ca_file, std::string& error);

}  // namespace refsmtp::net
