// Local recipients: domains, aliases, postmaster (RFC 5321 §4.5.1), +detail, catch-all, and
// names that can never become unsafe paths.
#include "refsmtp/delivery/local_recipients.hpp"


#include <gtest/gtest.h>

using refsmtp::smtp::make_path;

using namespace refsmtp::delivery;
using refsmtp::smtp::Mailbox;
using refsmtp::smtp::Path;

namespace {


LocalRecipients table(std::string_view text) {
  std::string error;
  auto t = LocalRecipients::parse(text, "recipients", error);
  EXPECT_TRUE(t) << error;
  return t ? *t : LocalRecipients{};
}

std::vector<std::string> boxes(const LocalRecipients& t, Path p) {
  auto r = t.resolve(p);
  return r ? r->mailboxes : std::vector<std::string>{"<unknown>"};
}

const char* kTable = R"(# test table
domains example.com Example.ORG
alice
bob
info: alice, bob
sales: info, partner@remote.test
loop1: loop2
loop2: loop1
)";

}  // namespace

TEST(LocalRecipients, MailboxesAliasesAndDomains) {
  const auto t = table(kTable);
  EXPECT_EQ(boxes(t, make_path("alice", "example.com")), std::vector<std::string>{"alice"});
  EXPECT_EQ(boxes(t, make_path("ALICE", "EXAMPLE.org")), std::vector<std::string>{"alice"});  // case-insensitive
  EXPECT_EQ(boxes(t, make_path("info", "example.com")), (std::vector<std::string>{"alice", "bob"}));
  auto sales = t.resolve(make_path("sales", "example.com"));
  ASSERT_TRUE(sales);
  EXPECT_EQ(sales->mailboxes, (std::vector<std::string>{"alice", "bob"}));
  ASSERT_EQ(sales->forwards.size(), 1u);
  EXPECT_EQ(sales->forwards[0].to_string(), "<partner@remote.test>");
  EXPECT_FALSE(t.resolve(make_path("carol", "example.com")));
  EXPECT_FALSE(t.resolve(make_path("alice", "other.test")));
  EXPECT_FALSE(t.resolve(make_path("loop1", "example.com")));  // alias loops resolve to nothing
  EXPECT_TRUE(t.is_local_domain("EXAMPLE.COM"));
}

TEST(LocalRecipients, PostmasterAlwaysExists) {  // RFC 5321 §4.5.1
  const auto t = table("domains example.com\nalice\n");
  EXPECT_EQ(boxes(t, make_path("Postmaster", "")), std::vector<std::string>{"postmaster"});
  EXPECT_EQ(boxes(t, make_path("postmaster", "example.com")), std::vector<std::string>{"postmaster"});
  const auto aliased = table("domains example.com\nalice\npostmaster: alice\n");
  EXPECT_EQ(boxes(aliased, make_path("POSTMASTER", "")), std::vector<std::string>{"alice"});
  EXPECT_FALSE(t.resolve(make_path("abuse", "")));  // only postmaster may come without a domain
  // §4.1.2: all quoted forms are equivalent.
  EXPECT_EQ(boxes(t, make_path("\"postmaster\"", "example.com")), std::vector<std::string>{"postmaster"});
  EXPECT_EQ(boxes(t, make_path("\"al\\ice\"", "example.com")), std::vector<std::string>{"alice"});
  EXPECT_FALSE(t.resolve(make_path("\"alice smith\"", "example.com")));
}

TEST(LocalRecipients, SubaddressingAndCatchAll) {
  auto t = table("domains example.com\nalice\n");
  EXPECT_EQ(boxes(t, make_path("alice+lists", "example.com")), std::vector<std::string>{"alice"});
  t.detail_separator = '\0';
  EXPECT_FALSE(t.resolve(make_path("alice+lists", "example.com")));
  const auto c = table("domains example.com\nalice\n*: alice\n");
  EXPECT_EQ(boxes(c, make_path("anything", "example.com")), std::vector<std::string>{"alice"});
  EXPECT_FALSE(c.resolve(make_path("anything", "elsewhere.test")));
}

TEST(LocalRecipients, LocalPartsNeverBecomeUnsafePaths) {
  const auto t = table("domains example.com\nalice\n*: alice\n");
  for (const char* evil : {"../etc", ".hidden", "a/b", "a..b", "\"../x\""}) {
    auto r = t.resolve(make_path(evil, "example.com"));
    if (r) {
      for (const auto& b : r->mailboxes) EXPECT_TRUE(LocalRecipients::safe_mailbox_name(b)) << evil << " -> " << b;
    }
  }
  EXPECT_FALSE(LocalRecipients::safe_mailbox_name("../x"));
  EXPECT_FALSE(LocalRecipients::safe_mailbox_name(".x"));
  EXPECT_FALSE(LocalRecipients::safe_mailbox_name("a/b"));
  EXPECT_FALSE(LocalRecipients::safe_mailbox_name(""));
  EXPECT_TRUE(LocalRecipients::safe_mailbox_name("first.last-2_x"));
}

TEST(LocalRecipients, ErrorsNameFileAndLine) {
  std::string error;
  EXPECT_FALSE(LocalRecipients::parse("domains example.com\nalice\n../bad\n", "recipients.conf", error));
  EXPECT_EQ(error.substr(0, 18), "recipients.conf:3:");
  EXPECT_FALSE(LocalRecipients::parse("alice\n", "r", error));
  EXPECT_EQ(error, "r: no 'domains' line: at least one local domain is needed");  // the whole file: no line
  EXPECT_FALSE(LocalRecipients::parse("domains example.com\n\ninfo: nobody\n", "r", error));
  EXPECT_EQ(error, "r:3: alias 'info' points to unknown 'nobody'");  // found after reading, still its line
  EXPECT_FALSE(LocalRecipients::parse("domains example.com\nalice\nalice\n", "r", error));
  EXPECT_EQ(error, "r:3: 'alice' is defined twice");
  EXPECT_FALSE(LocalRecipients::parse("domains example.com\nalice\n*: nobody\n", "r", error));
  EXPECT_EQ(error, "r:3: alias '*' points to unknown 'nobody'");
  EXPECT_FALSE(LocalRecipients::parse("domains bad..domain\n", "r", error));
  EXPECT_EQ(error.substr(0, 4), "r:1:");
}
