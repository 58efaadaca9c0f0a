#include "listeners_internal.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "refsmtp/server/server.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string_view role_name(Role r) {
  switch (r) {
    case Role::mx: return "mx";
    case Role::submission: return "submission";
    case Role::submissions: return "submissions";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : {Role::mx, Role::submission, Role::submissions}) {
    if (role_name(r) == name) return r;
  }
  return std::nullopt;
}

bool needs_auth(Role role) { return role != Role::mx; }

std::optional<ListenerSpec> parse_listen(const std::string& text, std::string& error) {
  const std::size_t eq = text.find('=');
  const std::size_t colon = text.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) {
    error = "--listen '" + text + "': expected ROLE=ADDRESS:PORT, e.g. mx=127.0.0.1:2525";
    return std::nullopt;
  }
  ListenerSpec l;
  const std::string role = text.substr(0, eq);
  l.address = text.substr(eq + 1, colon - eq - 1);
  if (l.address.size() >= 2 && l.address.front() == '[' && l.address.back() == ']') l.address = l.address.substr(1, l.address.size() - 2);
  const std::string port = text.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    error = "--listen '" + text + "': bad port '" + port + "'";
    return std::nullopt;
  }
  l.port = static_cast<std::uint16_t>(p);
  const auto r = parse_role(role);
  if (!r) {
    error = "--listen '" + text + "': unknown role '" + role + "' (mx, submission, submissions)";
    return std::nullopt;
  }
  l.role = *r;
  boost::system::error_code ec;
  asio::ip::make_address(l.address, ec);
  if (ec) {
    error = "--listen '" + text + "': '" + l.address + "' is not a numeric IP address";
    return std::nullopt;
  }
  return l;
}

std::unique_ptr<tcp::acceptor> bind_listener(asio::io_context& io, const ListenerSpec& l, ListenerSpec& bound, std::string& error) {
  boost::system::error_code ec;
  auto acceptor = std::make_unique<tcp::acceptor>(io);
  const tcp::endpoint ep(asio::ip::make_address(l.address), l.port);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + l.address + ":" + std::to_string(l.port) + " (" + std::string(role_name(l.role)) + "): " + ec.message();
    return nullptr;
  }
  bound = l;
  bound.port = acceptor->local_endpoint().port();
  return acceptor;
}

void add_addresses_listening_on(const std::vector<ListenerSpec>& listeners, std::uint16_t port, RelayConfig& rc,
                                std::string& error) {
  for (const auto& l : listeners) {
    if (l.port != port) continue;
    boost::system::error_code ec;
    const auto a = asio::ip::make_address(l.address, ec);
    if (ec) continue;
    if (!a.is_unspecified()) {
      rc.local_addresses.push_back(a.to_string());
      continue;
    }
    rc.local_loopback = true;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
      error = std::string("cannot list the interface addresses: ") + std::strerror(errno);
      continue;
    }
    for (const ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      char buf[INET6_ADDRSTRLEN] = {0};
      if (i->ifa_addr->sa_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      } else if (i->ifa_addr->sa_family == AF_INET6 && a.is_v6()) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf, sizeof buf);
      } else {
        continue;
      }
      rc.local_addresses.push_back(buf);
    }
    ::freeifaddrs(list);
  }
}

std::shared_ptr<asio::ssl::context> make_tls_context(const std::string& cert, const std::string& key, std::string& error) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert, ec);
  if (!ec) ctx->use_private_key_file(key, asio::ssl::context::pem, ec);
  std::string why = ec ? ec.message() : std::string();
  if (!ec && !SSL_CTX_check_private_key(ctx->native_handle())) why = "the key does not match the certificate";
  if (!why.empty()) {
    error = "TLS certificate/key (" + cert + ", " + key + "): " + why;
    return nullptr;
  }
  return ctx;
}

net::ConnectionOptions connection_options(Role role, const ServerOptions& opt, std::shared_ptr<asio::ssl::context> tls, bool stress) {
  net::ConnectionOptions copt;
  copt.role = std::string(role_name(role));
  copt.session.hostname = opt.hostname;
  copt.session.limits.message_size = opt.max_message_size;
  copt.session.command_timeout = std::chrono::seconds(opt.command_timeout_s);
  copt.session.data_timeout = std::chrono::seconds(opt.data_timeout_s);
  copt.max_duration = std::chrono::seconds(opt.max_connection_time_s);
  if (stress) {
    // Under stress every wait is short and few mistakes are allowed (Postfix: smtpd_timeout
    // ${stress?10}, hard error limit ${stress?1}).
    const auto short_wait = std::chrono::seconds(opt.stress_timeout_s);
    copt.session.command_timeout = std::min(copt.session.command_timeout, std::chrono::duration_cast<smtp::Millis>(short_wait));
    copt.session.data_timeout = std::min(copt.session.data_timeout, std::chrono::duration_cast<smtp::Millis>(short_wait));
    copt.session.limits.errors = std::min(copt.session.limits.errors, opt.stress_errors);
  }
  copt.tls = std::move(tls);
  copt.session.starttls = copt.tls != nullptr;
  switch (role) {
    case Role::mx:
      break;
    case Role::submission:
    case Role::submissions:
      // RFC 6409 §4.3, RFC 8314: submission needs AUTH before MAIL, and AUTH only over TLS.
      copt.session.auth_mechanisms = {"PLAIN", "LOGIN"};
      copt.session.auth_requires_tls = true;
      copt.session.auth_required = true;
      copt.implicit_tls = role == Role::submissions;
      break;
  }
  return copt;
}

asio::awaitable<void> serve(tcp::socket socket, Role role, std::uint64_t id, std::shared_ptr<net::ConnectionControl> control,
                            bool stress, const ServerOptions& opt, std::shared_ptr<asio::ssl::context> tls,
                            net::SessionHost& smtp_host) {
  switch (role) {
    case Role::mx:
    case Role::submission:
    case Role::submissions: {
      net::ConnectionOptions copt = connection_options(role, opt, std::move(tls), stress);
      copt.control = std::move(control);
      co_await net::serve_connection(std::move(socket), std::move(copt), smtp_host, id);
      co_return;
    }
  }
}

}  // namespace refsmtp::server
