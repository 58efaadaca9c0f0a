#include "recipient_policy.hpp"

#include <algorithm>
#include <set>

#include "refsmtp/core/text.hpp"

namespace refsmtp::server {

using core::ascii_lower;

namespace {

// RFC 5321 §3.6.2 / §4.2.2: 550 for a mailbox that does not exist here.
smtp::Reply no_such_user() { return smtp::make_reply(550, 5, 1, 1, "No such user here"); }
// RFC 5321 §3.6.2 / RFC 3463 §3.8 (5.7.1 delivery not authorized): no way out to this domain.
smtp::Reply not_relayed(const std::string& domain) {
  return smtp::make_reply(550, 5, 7, 1, "This server does not relay to " + domain + " (no --relay mx or --route for it)");
}

}  // namespace

RecipientPolicy::RecipientPolicy(std::vector<std::string> domains, std::optional<delivery::LocalRecipients> table,
                                 std::string hostname)
    : domains_(std::move(domains)), table_(std::move(table)), hostname_(std::move(hostname)) {
  for (auto& d : domains_) d = ascii_lower(d);
}

bool RecipientPolicy::is_local_domain(const std::string& domain) const {
  return table_ ? table_->is_local_domain(domain) : std::find(domains_.begin(), domains_.end(), domain) != domains_.end();
}

std::optional<delivery::Resolution> RecipientPolicy::resolve(const smtp::Path& p) const {
  if (table_) return table_->resolve(p);
  if (!p.mailbox) return std::nullopt;
  const std::string local = ascii_lower(p.mailbox->local_part);
  const bool ours = p.mailbox->domain.empty() ? local == "postmaster" : is_local_domain(ascii_lower(p.mailbox->domain));
  if (!ours || !delivery::LocalRecipients::safe_mailbox_name(local)) return std::nullopt;
  return delivery::Resolution{{local}, {}};
}

std::string RecipientPolicy::primary_domain(const smtp::Path& p) const {
  if (p.mailbox && !p.mailbox->domain.empty()) return ascii_lower(p.mailbox->domain);
  return domains_.empty() ? hostname_ : domains_.front();
}

Targets RecipientPolicy::targets_of(const smtp::Path& p, const Routable& routable) const {
  Targets t;
  if (auto where = resolve(p)) {
    t.mailboxes = where->mailboxes;
    t.remote = where->forwards;
  } else if (p.mailbox && !p.mailbox->domain.empty() && !is_local_domain(ascii_lower(p.mailbox->domain))) {
    t.remote.push_back(p);
  } else {
    t.refusal = no_such_user();
  }
  for (const auto& r : t.remote) {
    const std::string domain = ascii_lower(r.mailbox->domain);
    if (!routable(domain)) {
      t.refusal = not_relayed(domain);
      t.remote.clear();
      break;
    }
  }
  return t;
}

std::optional<smtp::Reply> RecipientPolicy::at_rcpt(const smtp::Path& p, bool authenticated, const Routable& routable) const {
  // A local recipient is taken even when an alias of it points somewhere this server cannot
  // reach: that target then bounces at delivery, and the alias's other targets still get it.
  if (resolve(p)) return std::nullopt;
  if (!p.mailbox || p.mailbox->domain.empty()) return no_such_user();
  const std::string domain = ascii_lower(p.mailbox->domain);
  if (is_local_domain(domain)) return no_such_user();
  if (!authenticated) return smtp::make_reply(554, 5, 7, 1, "Relay access denied");
  if (!routable(domain)) return not_relayed(domain);
  return std::nullopt;
}

smtp::Envelope RecipientPolicy::expand_aliases(const smtp::Envelope& in) const {
  smtp::Envelope out = in;
  out.recipients.clear();
  std::set<std::string> seen;
  auto add = [&](smtp::Path p, const smtp::RcptParams& params) {
    if (seen.insert(ascii_lower(p.to_string())).second) out.recipients.push_back(smtp::Recipient{std::move(p), params});
  };
  for (const auto& r : in.recipients) {
    const auto where = resolve(r.path);
    const bool domainless = !r.path.mailbox || r.path.mailbox->domain.empty();  // <Postmaster>: kept as it is
    if (!where || domainless || where->mailboxes.size() + where->forwards.size() <= 1) {
      add(r.path, r.params);
      continue;
    }
    for (const auto& box : where->mailboxes) {
      smtp::Path path;
      path.mailbox = smtp::Mailbox{box, primary_domain(r.path), false};
      add(std::move(path), r.params);
    }
    for (const auto& f : where->forwards) add(f, r.params);
  }
  return out;
}

}  // namespace refsmtp::server
