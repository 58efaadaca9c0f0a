#pragma once
// Whose mail this server takes and where it goes: one decision, made by the same functions when a
// client names a recipient (RCPT) and when the queue delivers to it, so the two can never
// disagree. Pure: no I/O; whether a domain can be relayed to is asked of the caller.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "refsmtp/delivery/local_recipients.hpp"
#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/server_session.hpp"

namespace refsmtp::server {

// Whether this server has a way out for a (lower-case) domain.
using Routable = std::function<bool(const std::string& domain)>;

// Where a recipient's mail goes.
struct Targets {
  std::vector<std::string> mailboxes;  // local mailbox names
  std::vector<smtp::Path> remote;      // relayed: the recipient itself, or an alias's remote targets
  std::optional<smtp::Reply> refusal;  // decided without delivering: not ours, or not relayed
};

class RecipientPolicy {
 public:
  // With a recipient table, it decides; else every safe local part of `domains` is a mailbox.
  RecipientPolicy(std::vector<std::string> domains, std::optional<delivery::LocalRecipients> table, std::string hostname);

  bool is_local_domain(const std::string& lower_domain) const;
  // Local mailboxes (and an alias's remote targets) for a recipient; nothing if it is not ours.
  std::optional<delivery::Resolution> resolve(const smtp::Path& p) const;
  // The domain to name a local mailbox with (at an LMTP server, in an expanded alias): the
  // recipient's own, else the first local domain (for the domainless <Postmaster>).
  std::string primary_domain(const smtp::Path& p) const;

  // The decision for one recipient at delivery.
  Targets targets_of(const smtp::Path& p, const Routable& routable) const;
  // At RCPT: nothing to accept, else the refusal. Another domain is relayed only for
  // authenticated clients (RFC 6409 §4.3; an MX is not an open relay, RFC 5321 §3.6.2).
  std::optional<smtp::Reply> at_rcpt(const smtp::Path& p, bool authenticated, const Routable& routable) const;

  // Aliases with several targets become one queue recipient per target, so each target has its
  // own delivery state: a target that was delivered is never sent again when another one is
  // retried, and a bounce names the address that failed. Targets are deduplicated.
  smtp::Envelope expand_aliases(const smtp::Envelope& in) const;

 private:
  std::vector<std::string> domains_;  // lower case
  std::optional<delivery::LocalRecipients> table_;
  std::string hostname_;
};

}  // namespace refsmtp::server
