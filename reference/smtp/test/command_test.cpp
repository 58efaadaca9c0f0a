// RFC 5321 §4.1.1 (commands) and §4.1.2 (parameters); RFC 3030, 3207, 4954, 1870, 6152, 6531, 3461.
#include "refsmtp/smtp/command.hpp"

#include <gtest/gtest.h>

using namespace refsmtp::smtp;

namespace {
Result<Command, CommandError> parse(std::string_view s, bool utf8 = false) {
  CommandOptions o;
  o.address.utf8 = utf8;
  return parse_command(s, o);
}
CommandErrorKind error_of(std::string_view s, bool utf8 = false) {
  auto r = parse(s, utf8);
  EXPECT_FALSE(r.ok()) << s;
  return r.ok() ? CommandErrorKind::unknown_command : r.error().kind;
}
}  // namespace

TEST(Command, VerbsAreCaseInsensitive) {  // §2.4
  for (const char* s : {"NOOP", "noop", "NoOp"}) {
    auto r = parse(s);
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(r->verb, Verb::noop);
  }
  EXPECT_EQ(parse("mail from:<a@b.test>")->verb, Verb::mail);
  EXPECT_EQ(parse("StartTLS")->verb, Verb::starttls);
}

TEST(Command, UnknownVerb) {  // §4.2.4 -> 500
  EXPECT_EQ(error_of("FOO"), CommandErrorKind::unknown_command);
  EXPECT_EQ(error_of(""), CommandErrorKind::unknown_command);
  EXPECT_EQ(error_of(" NOOP"), CommandErrorKind::unknown_command);
  EXPECT_EQ(error_of("NOOPX"), CommandErrorKind::unknown_command);
}

TEST(Command, EhloAndHelo) {  // §4.1.1.1
  EXPECT_EQ(parse("EHLO client.example")->domain, "client.example");
  EXPECT_EQ(parse("EHLO [192.0.2.1]")->domain, "[192.0.2.1]");
  EXPECT_EQ(parse("EHLO [IPv6:::1]")->domain, "[IPv6:::1]");
  EXPECT_EQ(parse("HELO client.example")->verb, Verb::helo);
  EXPECT_EQ(error_of("EHLO"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("EHLO "), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("EHLO bad_name"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("EHLO a.example extra"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("EHLO [300.1.1.1]"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("HELO [192.0.2.1]"), CommandErrorKind::syntax);  // helo = "HELO" SP Domain
  // §4.5.3.1.2: an address literal is bounded like a domain (255 octets).
  EXPECT_TRUE(parse("EHLO [x:" + std::string(251, 'a') + "]").ok());
  EXPECT_EQ(error_of("EHLO [x:" + std::string(252, 'a') + "]"), CommandErrorKind::syntax);
}

TEST(Command, MailFrom) {  // §4.1.1.2
  auto r = parse("MAIL FROM:<user@example.com>");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path.to_string(), "<user@example.com>");
  EXPECT_TRUE(parse("MAIL FROM:<>")->path.is_null());
  EXPECT_EQ(error_of("MAIL FROM:user@example.com"), CommandErrorKind::address);
  EXPECT_EQ(error_of("MAIL FROM: <user@example.com>"), CommandErrorKind::address);
  EXPECT_EQ(error_of("MAIL TO:<user@example.com>"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("MAIL"), CommandErrorKind::syntax);
  EXPECT_TRUE(parse("MAIL FROM:<a@b.test> ").ok());  // §4.1.1: trailing white space tolerated
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test>x"), CommandErrorKind::syntax);
  CommandOptions lenient;
  lenient.lenient_space_after_colon = true;
  EXPECT_TRUE(parse_command("MAIL FROM: <user@example.com>", lenient).ok());
}

TEST(Command, MailParameters) {  // §4.1.2 esmtp-param, RFC 1870, 6152, 3030, 6531, 4954, 3461
  auto r = parse("MAIL FROM:<a@b.test> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<> RET=HDRS ENVID=QQ+2B1");
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->mail.size, 1000u);
  EXPECT_EQ(r->mail.body, BodyType::eight_bit_mime);
  EXPECT_TRUE(r->mail.smtputf8);
  EXPECT_EQ(r->mail.auth, "<>");
  EXPECT_EQ(r->mail.ret, DsnRet::hdrs);
  EXPECT_EQ(r->mail.envid, "QQ+2B1");
  EXPECT_EQ(r->params.size(), 6u);
  EXPECT_EQ(parse("MAIL FROM:<a@b.test> body=binarymime")->mail.body, BodyType::binary_mime);
  EXPECT_EQ(parse("MAIL FROM:<a@b.test> BODY=7BIT")->mail.body, BodyType::seven_bit);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SIZE=abc"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SIZE"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SIZE=999999999999999999999"), CommandErrorKind::bad_parameter_value);  // 21 digits
  EXPECT_EQ(parse("MAIL FROM:<a@b.test> SIZE=99999999999999999999")->mail.size, UINT64_MAX);  // 20: saturates
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> BODY=9BIT"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SMTPUTF8=yes"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> AUTH=a+zz"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> ENVID=" + std::string(101, 'x')), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> XFOO=1"), CommandErrorKind::unknown_parameter);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SIZE=1 SIZE=2"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> -X"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> SIZE=1  BODY=7BIT"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test> X=a=b"), CommandErrorKind::syntax);  // "=" not in esmtp-value
}

TEST(Command, RcptTo) {  // §4.1.1.3
  auto r = parse("RCPT TO:<user@example.com>");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path.mailbox->local_part, "user");
  EXPECT_TRUE(parse("RCPT TO:<Postmaster>").ok());
  EXPECT_EQ(error_of("RCPT TO:<>"), CommandErrorKind::address);
  EXPECT_EQ(error_of("RCPT FROM:<a@b.test>"), CommandErrorKind::syntax);
  auto dsn = parse("RCPT TO:<a@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.test");
  ASSERT_TRUE(dsn.ok()) << dsn.error().detail;
  EXPECT_EQ(dsn->rcpt.notify, notify::success | notify::failure);
  EXPECT_EQ(dsn->rcpt.orcpt, "rfc822;a@b.test");
  EXPECT_EQ(parse("RCPT TO:<a@b.test> NOTIFY=NEVER")->rcpt.notify, notify::never);
  EXPECT_EQ(error_of("RCPT TO:<a@b.test> NOTIFY=NEVER,DELAY"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("RCPT TO:<a@b.test> NOTIFY=SOMETIMES"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("RCPT TO:<a@b.test> ORCPT=nosemicolon"), CommandErrorKind::bad_parameter_value);
  EXPECT_EQ(error_of("RCPT TO:<a@b.test> SIZE=10"), CommandErrorKind::unknown_parameter);
}

TEST(Command, Utf8NeedsSmtputf8OnMail) {  // RFC 6531 §3.4
  const std::string addr = "<j\xC3\xB6rg@example.com>";
  auto no = parse("MAIL FROM:" + addr, true);
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error().address, AddressError::utf8_not_allowed);
  EXPECT_TRUE(parse("MAIL FROM:" + addr + " SMTPUTF8", true).ok());
  EXPECT_FALSE(parse("MAIL FROM:" + addr + " SMTPUTF8", false).ok());  // not offered
  EXPECT_TRUE(parse("RCPT TO:" + addr, true).ok());
  EXPECT_FALSE(parse("RCPT TO:" + addr, false).ok());
  EXPECT_EQ(error_of("NOOP \xC3\xB6"), CommandErrorKind::syntax);
}

TEST(Command, Bdat) {  // RFC 3030 §2
  auto r = parse("BDAT 1000");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chunk_size, 1000u);
  EXPECT_FALSE(r->last);
  auto last = parse("BDAT 0 LAST");
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->last);
  EXPECT_TRUE(parse("bdat 5 last")->last);
  EXPECT_EQ(error_of("BDAT"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("BDAT -1"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("BDAT 10 FIRST"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("BDAT 10 LAST x"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("BDAT 99999999999999999999"), CommandErrorKind::syntax);
}

TEST(Command, Auth) {  // RFC 4954 §4
  auto r = parse("AUTH plain AHVzZXIAcGFzcw==");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mechanism, "PLAIN");
  EXPECT_EQ(r->initial_response, "AHVzZXIAcGFzcw==");
  EXPECT_FALSE(parse("AUTH LOGIN")->initial_response.has_value());
  EXPECT_EQ(parse("AUTH PLAIN =")->initial_response, "=");
  EXPECT_EQ(error_of("AUTH"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("AUTH BAD!MECH"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("AUTH " + std::string(21, 'A')), CommandErrorKind::syntax);
}

TEST(Command, ArgumentRules) {  // §4.1.1.4 - §4.1.1.10, RFC 3207 §4
  for (const char* s : {"DATA x", "RSET x", "QUIT x", "STARTTLS x"}) {
    EXPECT_EQ(error_of(s), CommandErrorKind::syntax) << s;
  }
  EXPECT_EQ(error_of("VRFY"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("EXPN"), CommandErrorKind::syntax);
  EXPECT_EQ(parse("VRFY someone")->argument, "someone");
  EXPECT_EQ(parse("NOOP anything here")->argument, "anything here");
  EXPECT_TRUE(parse("HELP")->argument.empty());
  EXPECT_EQ(parse("HELP MAIL")->argument, "MAIL");
}

TEST(Command, ControlCharactersAreSyntaxErrors) {  // §2.3.8, §4.1.1
  EXPECT_EQ(error_of(std::string("NOOP a\0b", 8)), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("NOOP a\rb"), CommandErrorKind::syntax);
  EXPECT_EQ(error_of("MAIL FROM:<a@b.test>\tSIZE=1"), CommandErrorKind::syntax);
}

TEST(Command, FormatRoundTrips) {
  for (const char* s : {"EHLO a.test", "MAIL FROM:<> SIZE=10 BODY=8BITMIME", "RCPT TO:<Postmaster>",
                        "RCPT TO:<\"x y\"@[192.0.2.1]>", "BDAT 7 LAST", "AUTH PLAIN =", "DATA", "QUIT",
                        "VRFY joe", "MAIL FROM:<@r.test:a@b.test>"}) {
    auto r = parse(s);
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(format_command(*r), s);
  }
}

TEST(Xtext, Rfc3461) {  // RFC 3461 §4
  EXPECT_TRUE(is_xtext("abc"));
  EXPECT_TRUE(is_xtext("a+2Bb"));
  EXPECT_FALSE(is_xtext("a+2b"));
  EXPECT_FALSE(is_xtext("a+2"));
  EXPECT_FALSE(is_xtext("a=b"));
  EXPECT_FALSE(is_xtext("a b"));
}

TEST(Command, TrailingWhiteSpaceTolerated) {  // §4.1.1 SHOULD
  for (const char* line : {"RSET ", "QUIT \t", "NOOP  ", "MAIL FROM:<a@b.test> ", "RCPT TO:<c@d.test> NOTIFY=NEVER \t"}) {
    EXPECT_TRUE(parse_command(line, {})) << line;
  }
  auto m = parse_command("MAIL FROM:<a@b.test> SIZE=10 ", {});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->mail.size, 10u);
  EXPECT_FALSE(parse_command("EHLO ", {}));  // still needs a domain
}
