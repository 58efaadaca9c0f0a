#pragma once
// The listener side of the composition root: binding, the addresses a wildcard listener stands
// for, and the session options of each role.
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "refsmtp/net/connection.hpp"
#include "refsmtp/server/listeners.hpp"
#include "refsmtp/server/relayer.hpp"

namespace refsmtp::server {

struct ServerOptions;

// Opens, binds and listens; nothing, with `error` naming the listener, on failure. `bound` gets
// the spec with the port actually bound.
std::unique_ptr<boost::asio::ip::tcp::acceptor> bind_listener(boost::asio::io_context& io, const ListenerSpec& spec,
                                                               ListenerSpec& bound, std::string& error);

// Where this server takes connections on `port`, for the relay's self-MX rule (RFC 5321 §5.1):
// the listeners' addresses; a wildcard listener (0.0.0.0, ::) stands for every address of this
// host's interfaces (of its family; :: takes IPv4 too) and for every loopback address. An error
// listing the interfaces goes to `error` (the rule then knows fewer addresses).
void add_addresses_listening_on(const std::vector<ListenerSpec>& listeners, std::uint16_t port, RelayConfig& rc,
                                std::string& error);

// A server TLS context (TLS 1.2 and later) with this certificate chain and key; nothing, with
// `error` naming both files and why (unreadable, not PEM, or a key that is not the certificate's).
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& cert, const std::string& key, std::string& error);

// The connection options for a new SMTP connection on a listener of `role`.
net::ConnectionOptions connection_options(Role role, const ServerOptions& opt, std::shared_ptr<boost::asio::ssl::context> tls,
                                          bool stress = false);

// Serves one accepted connection with the protocol driver of its role (net::serve_connection for
// the SMTP roles), to its end.
boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket, Role role, std::uint64_t id,
                                   std::shared_ptr<net::ConnectionControl> control, bool stress, const ServerOptions& opt,
                                   std::shared_ptr<boost::asio::ssl::context> tls, net::SessionHost& smtp_host);

// Whether a role takes AUTH, and so needs TLS and a credentials file.
bool needs_auth(Role role);

}  // namespace refsmtp::server
