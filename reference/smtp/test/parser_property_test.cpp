// format(parse(x)) == x for generated valid commands, mailboxes and replies.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "refsmtp/smtp/command.hpp"
#include "refsmtp/smtp/reply.hpp"

using namespace refsmtp::smtp;

namespace {

const std::string kAtext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";

rc::Gen<std::string> gen_atom() {
  return rc::gen::resize(8, rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::elementOf(kAtext))));
}

rc::Gen<std::string> gen_dot_string() {
  return rc::gen::map(rc::gen::resize(4, rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(gen_atom()))),
                      [](const std::vector<std::string>& atoms) {
                        std::string s;
                        for (const auto& a : atoms) s += (s.empty() ? "" : ".") + a;
                        return s;
                      });
}

rc::Gen<std::string> gen_quoted_string() {
  // qtextSMTP and quoted-pairSMTP
  return rc::gen::map(rc::gen::resize(10, rc::gen::container<std::vector<int>>(rc::gen::inRange(32, 127))),
                      [](const std::vector<int>& cs) {
                        std::string s = "\"";
                        for (int c : cs) {
                          if (c == '"' || c == '\\') s += '\\';
                          s += static_cast<char>(c);
                        }
                        return s + "\"";
                      });
}

rc::Gen<std::string> gen_label() {
  return rc::gen::map(rc::gen::pair(rc::gen::inRange(0, 36), rc::gen::resize(6, rc::gen::container<std::string>(rc::gen::elementOf(std::string("abc-0123xyz"))))),
                      [](const std::pair<int, std::string>& p) {
                        const char* alnum = "abcdefghijklmnopqrstuvwxyz0123456789";
                        std::string l(1, alnum[p.first]);
                        if (!p.second.empty()) l += p.second + "z";
                        return l;
                      });
}

rc::Gen<std::string> gen_domain() {
  return rc::gen::map(rc::gen::resize(4, rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(gen_label()))),
                      [](const std::vector<std::string>& ls) {
                        std::string d;
                        for (const auto& l : ls) d += (d.empty() ? "" : ".") + l;
                        return d;
                      });
}

rc::Gen<std::string> gen_ipv4_literal() {
  return rc::gen::map(rc::gen::container<std::vector<int>>(4, rc::gen::inRange(0, 256)), [](const std::vector<int>& o) {
    return "[" + std::to_string(o[0]) + "." + std::to_string(o[1]) + "." + std::to_string(o[2]) + "." + std::to_string(o[3]) + "]";
  });
}

rc::Gen<Mailbox> gen_mailbox() {
  return rc::gen::apply(
      [](const std::string& local, bool literal, const std::string& domain, const std::string& lit) {
        return Mailbox{local, literal ? lit : domain, literal};
      },
      rc::gen::oneOf(gen_dot_string(), gen_quoted_string()), rc::gen::arbitrary<bool>(), gen_domain(),
      gen_ipv4_literal());
}

rc::Gen<Command> gen_command() {
  return rc::gen::oneOf(
      rc::gen::map(gen_domain(), [](const std::string& d) { Command c; c.verb = Verb::ehlo; c.domain = d; return c; }),
      rc::gen::map(rc::gen::pair(gen_mailbox(), rc::gen::inRange<std::uint64_t>(0, 1'000'000)),
                   [](const std::pair<Mailbox, std::uint64_t>& p) {
                     Command c;
                     c.verb = Verb::mail;
                     c.path.mailbox = p.first;
                     c.params.push_back(EsmtpParam{"SIZE", std::to_string(p.second)});
                     c.mail.size = p.second;
                     return c;
                   }),
      rc::gen::map(gen_mailbox(), [](const Mailbox& m) {
        Command c;
        c.verb = Verb::rcpt;
        c.path.mailbox = m;
        return c;
      }),
      rc::gen::map(rc::gen::pair(rc::gen::inRange<std::uint64_t>(0, 1u << 30), rc::gen::arbitrary<bool>()),
                   [](const std::pair<std::uint64_t, bool>& p) {
                     Command c;
                     c.verb = Verb::bdat;
                     c.chunk_size = p.first;
                     c.last = p.second;
                     return c;
                   }));
}

}  // namespace

RC_GTEST_PROP(Parser, MailboxFormatParseRoundTrip, ()) {
  const Mailbox m = *gen_mailbox();
  const std::string text = m.to_string();
  auto r = parse_mailbox_exact(text, AddressOptions{});
  if (m.local_part.size() > 64) {
    RC_ASSERT(!r.ok());
    return;
  }
  RC_ASSERT(r.ok());
  RC_ASSERT(*r == m);
}

RC_GTEST_PROP(Parser, CommandFormatParseRoundTrip, ()) {
  const Command c = *gen_command();
  const std::string line = format_command(c);
  auto r = parse_command(line);
  if (!r.ok()) {
    // Only the §4.5.3.1 limits may refuse a generated command.
    RC_ASSERT(r.error().kind == CommandErrorKind::address);
    RC_ASSERT(r.error().address != AddressError::syntax);
    return;
  }
  RC_ASSERT(*r == c);
  RC_ASSERT(format_command(*r) == line);
}

RC_GTEST_PROP(Parser, ReplyFormatReadRoundTrip, ()) {
  const int code = *rc::gen::element(220, 221, 250, 354, 421, 450, 451, 452, 500, 501, 503, 550, 552, 554);
  const auto lines = *rc::gen::resize(5, rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(
                                             rc::gen::container<std::string>(rc::gen::inRange<char>(32, 127)))));
  Reply r{code, std::nullopt, lines};
  if (*rc::gen::arbitrary<bool>() && code != 354) {
    r.enhanced = EnhancedStatus{code / 100, *rc::gen::inRange(0, 8), *rc::gen::inRange(0, 30)};
  }
  ReplyReader reader;
  const std::string wire = r.format();
  const auto cut = *rc::gen::inRange<std::size_t>(0, wire.size() + 1);
  reader.feed(wire.substr(0, cut));
  reader.feed(wire.substr(cut));
  auto item = reader.next();
  RC_ASSERT(item.has_value());
  RC_ASSERT(item->reply.has_value());
  if (r.enhanced) {
    RC_ASSERT(*item->reply == r);
  } else {
    RC_ASSERT(item->reply->code == r.code);
    // Text that happens to start like a status code is read as one; otherwise lines match.
    if (!item->reply->enhanced) RC_ASSERT(item->reply->lines == r.lines);
  }
  RC_ASSERT(!reader.next().has_value());
}
