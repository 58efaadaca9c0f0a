#pragma once
// What refsmtpd listens on: each listener has a role, and the role decides the protocol and its
// rules. Adding a role (POP3, IMAP) means a value here, its name, its session options in
// listeners.cpp, and its driver.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace refsmtp::server {

enum class Role {
  mx,           // RFC 5321 on port 25: mail for the local domains from anyone
  submission,   // RFC 6409 on port 587: STARTTLS, then AUTH before MAIL
  submissions,  // RFC 8314 on port 465: TLS from the first byte, then AUTH before MAIL
};

std::string_view role_name(Role r);  // "mx", "submission", "submissions"
std::optional<Role> parse_role(std::string_view name);

struct ListenerSpec {
  Role role = Role::mx;
  std::string address;     // numeric, e.g. 127.0.0.1 or ::1
  std::uint16_t port = 0;  // 0 picks a free port
};

// Parses "ROLE=ADDRESS:PORT" ("[::1]:25" for IPv6); nothing on error with `error` set.
std::optional<ListenerSpec> parse_listen(const std::string& text, std::string& error);

}  // namespace refsmtp::server
