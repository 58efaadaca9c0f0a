// RFC 5321 §4.1.2 (address grammar), §4.1.3 (address literals), §4.5.3.1 (limits), RFC 6531 §3.3.
#include "refsmtp/smtp/address.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace refsmtp::smtp;

namespace {

AddressOptions ascii() { return AddressOptions{}; }
AddressOptions utf8() {
  AddressOptions o;
  o.utf8 = true;
  return o;
}

bool valid_mailbox(const std::string& s, const AddressOptions& o = ascii()) {
  return parse_mailbox_exact(s, o).ok();
}

}  // namespace

TEST(Mailbox, DotStringForms) {  // §4.1.2 Dot-string = Atom *("." Atom)
  EXPECT_TRUE(valid_mailbox("user@example.com"));
  EXPECT_TRUE(valid_mailbox("first.last@example.com"));
  EXPECT_TRUE(valid_mailbox("a!#$%&'*+-/=?^_`{|}~@example.com"));
  EXPECT_FALSE(valid_mailbox(".user@example.com"));
  EXPECT_FALSE(valid_mailbox("user.@example.com"));
  EXPECT_FALSE(valid_mailbox("us..er@example.com"));
  EXPECT_FALSE(valid_mailbox("@example.com"));
  EXPECT_FALSE(valid_mailbox("user@"));
  EXPECT_FALSE(valid_mailbox("user"));
  EXPECT_FALSE(valid_mailbox("us er@example.com"));
  EXPECT_FALSE(valid_mailbox("us(er@example.com"));
}

TEST(Mailbox, QuotedStringForms) {  // §4.1.2 Quoted-string, qtextSMTP, quoted-pairSMTP
  EXPECT_TRUE(valid_mailbox("\"john doe\"@example.com"));
  EXPECT_TRUE(valid_mailbox("\"a\\\"b\"@example.com"));
  EXPECT_TRUE(valid_mailbox("\"\"@example.com"));
  EXPECT_TRUE(valid_mailbox("\"a@b\"@example.com"));
  EXPECT_FALSE(valid_mailbox("\"unterminated@example.com"));
  EXPECT_FALSE(valid_mailbox(std::string("\"a\x01\"@example.com")));
  EXPECT_FALSE(valid_mailbox("\"a\\\x7f\"@example.com"));
  auto m = parse_mailbox_exact("\"john doe\"@example.com", ascii());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->local_part, "\"john doe\"");
  EXPECT_EQ(m->domain, "example.com");
}

TEST(Mailbox, DomainForms) {  // §4.1.2 Domain, sub-domain, Let-dig, Ldh-str
  EXPECT_TRUE(valid_mailbox("u@a"));
  EXPECT_TRUE(valid_mailbox("u@a-b.c-d"));
  EXPECT_TRUE(valid_mailbox("u@123.example"));
  EXPECT_FALSE(valid_mailbox("u@-a.com"));
  EXPECT_FALSE(valid_mailbox("u@a-.com"));
  EXPECT_FALSE(valid_mailbox("u@a..com"));
  EXPECT_FALSE(valid_mailbox("u@a.com."));
  EXPECT_FALSE(valid_mailbox("u@a_b.com"));
}

TEST(Mailbox, AddressLiterals) {  // §4.1.3
  EXPECT_TRUE(valid_mailbox("u@[192.0.2.1]"));
  EXPECT_TRUE(valid_mailbox("u@[255.255.255.255]"));
  EXPECT_FALSE(valid_mailbox("u@[256.0.0.1]"));
  EXPECT_FALSE(valid_mailbox("u@[1.2.3]"));
  EXPECT_FALSE(valid_mailbox("u@[1.2.3.4.5]"));
  EXPECT_FALSE(valid_mailbox("u@[0001.2.3.4]"));
  EXPECT_TRUE(valid_mailbox("u@[IPv6:2001:db8::1]"));
  EXPECT_TRUE(valid_mailbox("u@[IPv6:::1]"));
  EXPECT_TRUE(valid_mailbox("u@[IPv6:1:2:3:4:5:6:7:8]"));
  EXPECT_TRUE(valid_mailbox("u@[IPv6:::ffff:192.0.2.1]"));
  EXPECT_TRUE(valid_mailbox("u@[IPv6:1:2:3:4:5:6:192.0.2.1]"));
  EXPECT_FALSE(valid_mailbox("u@[IPv6:1:2:3:4:5:6:7:8:9]"));
  EXPECT_FALSE(valid_mailbox("u@[IPv6:1::2::3]"));
  EXPECT_FALSE(valid_mailbox("u@[IPv6:1:2:3:4:5:6:7::8]"));  // "::" must stand for a group
  EXPECT_FALSE(valid_mailbox("u@[IPv6:12345::1]"));
  EXPECT_FALSE(valid_mailbox("u@[IPv6:1:]"));
  EXPECT_TRUE(valid_mailbox("u@[x-tag:some.content]"));       // General-address-literal
  EXPECT_FALSE(valid_mailbox("u@[x-tag:]"));
  EXPECT_FALSE(valid_mailbox("u@[tag-:x]"));
  EXPECT_FALSE(valid_mailbox("u@[192.0.2.1"));
  auto m = parse_mailbox_exact("u@[192.0.2.1]", ascii());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->domain_is_literal);
}

TEST(Mailbox, LocalPartLimitAt63_64_65) {  // §4.5.3.1.1
  EXPECT_TRUE(valid_mailbox(std::string(63, 'a') + "@x.test"));
  EXPECT_TRUE(valid_mailbox(std::string(64, 'a') + "@x.test"));
  auto r = parse_mailbox_exact(std::string(65, 'a') + "@x.test", ascii());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), AddressError::local_part_too_long);
}

namespace {
// A domain of exactly n octets made of labels of at most 51 octets.
std::string domain_of(std::size_t n) {
  std::string d;
  while (n - d.size() > 51) d += std::string(50, 'd') + ".";
  d += std::string(n - d.size(), 'e');
  return d;
}
}  // namespace

TEST(Mailbox, DomainLimitAt254_255_256) {  // §4.5.3.1.2
  for (std::size_t n : {254u, 255u, 256u}) {
    const std::string d = domain_of(n);
    ASSERT_EQ(d.size(), n);
    auto r = parse_domain(d, ascii());
    if (n <= 255) {
      EXPECT_TRUE(r.ok()) << n;
    } else {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error(), AddressError::domain_too_long);
    }
  }
  EXPECT_TRUE(parse_domain(std::string(63, 'a'), ascii()).ok());
  EXPECT_FALSE(parse_domain(std::string(64, 'a'), ascii()).ok());  // RFC 1035 label limit
}

TEST(Path, PathLimitAt255_256_257) {  // §4.5.3.1.3: the path counts "<" and ">"
  for (std::size_t n : {255u, 256u, 257u}) {
    // "<" + 64 + "@" + domain + ">" = n
    const std::string path = "<" + std::string(64, 'l') + "@" + domain_of(n - 67) + ">";
    ASSERT_EQ(path.size(), n);
    auto r = parse_forward_path(path, ascii());
    if (n <= 256) {
      EXPECT_TRUE(r.ok()) << n;
    } else {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error(), AddressError::path_too_long);
    }
  }
}

TEST(Path, ReversePathForms) {  // §4.1.2 Reverse-path = Path / "<>"
  auto null = parse_reverse_path("<>", ascii());
  ASSERT_TRUE(null.ok());
  EXPECT_TRUE(null->value.is_null());
  EXPECT_EQ(null->consumed, 2u);
  EXPECT_FALSE(parse_forward_path("<>", ascii()).ok());
  EXPECT_FALSE(parse_reverse_path("user@example.com", ascii()).ok());
  EXPECT_FALSE(parse_reverse_path("<user@example.com", ascii()).ok());
}

TEST(Path, SourceRouteIsAcceptedAndIgnored) {  // §4.1.2 A-d-l, Appendix C
  auto r = parse_forward_path("<@relay1.test,@relay2.test:user@example.com>", ascii());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->value.source_route, "@relay1.test,@relay2.test");
  EXPECT_EQ(r->value.to_string(), "<user@example.com>");
  EXPECT_FALSE(parse_forward_path("<@relay1.test:>", ascii()).ok());
  EXPECT_FALSE(parse_forward_path("<@relay1.test,user@example.com>", ascii()).ok());
}

TEST(Path, PostmasterWithoutDomain) {  // §4.1.1.3, §4.5.1
  for (const char* p : {"<Postmaster>", "<postmaster>", "<POSTMASTER>"}) {
    auto r = parse_forward_path(p, ascii());
    ASSERT_TRUE(r.ok()) << p;
    EXPECT_TRUE(r->value.mailbox->domain.empty());
  }
  EXPECT_FALSE(parse_forward_path("<abuse>", ascii()).ok());
  EXPECT_FALSE(parse_reverse_path("<postmaster>", ascii()).ok());
  EXPECT_TRUE(parse_forward_path("<postmaster@example.com>", ascii()).ok());
}

TEST(Utf8, OnlyWithSmtputf8) {  // RFC 6531 §3.3
  const std::string local = "j\xC3\xB6rg@example.com";
  const std::string domain = "user@b\xC3\xBC" "cher.example";
  const std::string quoted = "\"j\xC3\xB6rg\"@example.com";
  for (const auto& s : {local, domain, quoted}) {
    auto r = parse_mailbox_exact(s, ascii());
    ASSERT_FALSE(r.ok()) << s;
    EXPECT_EQ(r.error(), AddressError::utf8_not_allowed);
    EXPECT_TRUE(valid_mailbox(s, utf8())) << s;
  }
  // Malformed UTF-8 is a syntax error even when UTF-8 is allowed.
  EXPECT_FALSE(valid_mailbox("j\xC3@example.com", utf8()));
  EXPECT_FALSE(valid_mailbox("j\xC0\xAF@example.com", utf8()));      // overlong
  EXPECT_FALSE(valid_mailbox("j\xED\xA0\x80@example.com", utf8()));  // surrogate
  EXPECT_FALSE(valid_mailbox("j\xF4\x90\x80\x80@example.com", utf8()));  // > U+10FFFF
}

TEST(Utf8, Validator) {  // RFC 3629 §4
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
}

TEST(Mailbox, PrefixParsingStopsAtTheEnd) {
  auto r = parse_mailbox("user@example.com> SIZE=10", ascii());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->consumed, 16u);
}

TEST(Address, UnquoteLocalPart) {  // §4.1.2: all quoted forms are equivalent
  EXPECT_EQ(unquote_local_part("\"postmaster\""), "postmaster");
  EXPECT_EQ(unquote_local_part("\"a\\\"b\\\\c\""), "a\"b\\c");
  EXPECT_EQ(unquote_local_part("\"\""), "");
  EXPECT_EQ(unquote_local_part("plain.dot"), "plain.dot");
  EXPECT_EQ(unquote_local_part("\""), "\"");
}
