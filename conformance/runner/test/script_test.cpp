// The conformance script format: every suite file parses; errors name file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "refsmtp/conform/script.hpp"

using namespace refsmtp::conform;

TEST(Suites, EveryCaseParsesAndNamesItsRfc) {
  std::size_t count = 0;
  std::set<std::string> names;
  for (const auto& e : std::filesystem::recursive_directory_iterator(REFSMTP_SUITES_DIR)) {
    if (e.path().extension() != ".smtp") continue;
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    ParseError error;
    auto s = parse_script(ss.str(), e.path().string(), error);
    ASSERT_TRUE(s) << error.message;
    EXPECT_TRUE(s->rfc.starts_with("RFC ")) << e.path();
    EXPECT_FALSE(s->title.empty()) << e.path();
    EXPECT_TRUE(names.insert(s->name).second) << "duplicate case name " << s->name;
    ++count;
  }
  EXPECT_GE(count, 30u);
}

TEST(Script, StepsAndExpectations) {
  ParseError error;
  auto s = parse_script(
      "# case: x\n# rfc: RFC 5321 §1\n# level: SHOULD\n# quote: A server SHOULD do it.\n# needs: PIPELINING STARTTLS\n# title: t\n"
      "S: 220\nC: EHLO a\nS: 250 2.x.x /hello/\n!S: 550|553\nS: 2xx\nRAW: a\\r\\n\\x00\nCAP: SIZE\nSTARTTLS\nS: closed\nS: none 300\nSLEEP: 10\n",
      "f.smtp", error);
  ASSERT_TRUE(s) << error.message;
  EXPECT_EQ(s->level, Level::should);
  EXPECT_EQ(s->needs, (std::vector<std::string>{"PIPELINING", "STARTTLS"}));
  ASSERT_EQ(s->steps.size(), 11u);
  EXPECT_EQ(s->steps[2].expect.enhanced, "2.x.x");
  EXPECT_EQ(s->steps[2].expect.regex, "hello");
  EXPECT_EQ(s->steps[3].expect.codes, (std::vector<std::string>{"550", "553"}));
  EXPECT_EQ(s->steps[5].text, std::string("a\r\n\0", 4));
  EXPECT_EQ(s->steps[8].expect.kind, Expect::Kind::closed);
  EXPECT_EQ(s->steps[9].expect.silence_ms, 300);
  EXPECT_TRUE(s->steps[3].asserts);
  EXPECT_FALSE(s->steps[2].asserts);
  EXPECT_EQ(s->assertions_end(), 4u);
  EXPECT_EQ(s->quote, "A server SHOULD do it.");
}

TEST(Script, NewStepsAndHeaders) {
  ParseError error;
  auto s = parse_script(
      "# case: x\n# rfc: RFC 4954 §4\n# level: NOTE\n# quote: auth = \"AUTH\" SP sasl-mech\n# quote: [SP initial-response]\n"
      "# skip-when: accept_all\n# title: t\n"
      "S: 220\n!S*: 2xx|5xx\nAUTH\n!AUTH WRONG\nC: QUIT\n!S: 221|closed\n!HEADER: Received\n!HEADER: Return-Path /^<${sender}>$/\n",
      "f.smtp", error);
  ASSERT_TRUE(s) << error.message;
  EXPECT_EQ(s->level, Level::note);
  EXPECT_EQ(s->quote, "auth = \"AUTH\" SP sasl-mech [SP initial-response]");
  EXPECT_EQ(s->skip_when, (std::vector<std::string>{"accept_all"}));
  ASSERT_EQ(s->steps.size(), 8u);
  EXPECT_EQ(s->steps[1].kind, Step::Kind::expect_all);
  EXPECT_EQ(s->steps[1].expect.codes, (std::vector<std::string>{"2xx", "5xx"}));
  EXPECT_EQ(s->steps[2].kind, Step::Kind::auth);
  EXPECT_FALSE(s->steps[2].last);
  EXPECT_FALSE(s->steps[2].asserts);
  EXPECT_TRUE(s->steps[3].last);
  EXPECT_TRUE(s->steps[5].expect.or_closed);
  EXPECT_EQ(s->steps[5].expect.codes, (std::vector<std::string>{"221"}));
  EXPECT_EQ(s->steps[6].kind, Step::Kind::header);
  EXPECT_EQ(s->steps[6].text, "Received");
  EXPECT_EQ(s->steps[7].regex, "^<${sender}>$");
  EXPECT_TRUE(s->checks_delivery());

  const std::string h = "# case: x\n# rfc: RFC 1\n# title: t\n";
  // Every case quotes its sentence, whose keyword is the case's level, and asserts something.
  EXPECT_FALSE(parse_script(h + "!S: 220\n", "bad.smtp", error));
  EXPECT_EQ(error.message, "bad.smtp: missing '# quote:' header (the RFC sentence the case tests, verbatim)");
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: The server should answer.\n!S: 220\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("holds no MUST keyword"), std::string::npos) << error.message;
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUSTER the troops.\n!S: 220\n", "bad.smtp", error));
  EXPECT_TRUE(parse_script(h + "# level: MUST\n# quote: It is REQUIRED.\n!S: 220\n", "ok.smtp", error)) << error.message;
  EXPECT_TRUE(parse_script(h + "# level: SHOULD\n# quote: It is RECOMMENDED.\n!S: 220\n", "ok.smtp", error)) << error.message;
  EXPECT_FALSE(parse_script(h + "# level: MAY\n# quote: It MUST.\n!S: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUST.\nS: 220\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("no step asserts the rule"), std::string::npos) << error.message;
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUST.\n!C: NOOP\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("bad.smtp:6: only a check can be marked"), std::string::npos) << error.message;
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUST.\n!S*: closed\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUST.\n!HEADER: Bad Name\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# level: MUST\n# quote: It MUST.\n!HEADER: X /[/\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# skip-when: sometimes\n", "bad.smtp", error));
  // Names are file names and baseline words; numbers are whole numbers.
  EXPECT_FALSE(parse_script("# case: ../x\n# rfc: RFC 1\n# quote: It MUST.\n!S: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script("# case: two words\n# rfc: RFC 1\n# quote: It MUST.\n!S: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# quote: It MUST.\nSLEEP: 10abc\n!S: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# quote: It MUST.\nSLEEP: 4294967297\n!S: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# quote: It MUST.\n!S: none 5x\n", "bad.smtp", error));
}

TEST(Script, ErrorsNameFileAndLine) {
  ParseError error;
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nS: 250\nS: 25\n", "bad.smtp", error));
  EXPECT_EQ(error.message.substr(0, 11), "bad.smtp:4:");
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nQ: what\n", "bad.smtp", error));
  EXPECT_EQ(error.message.substr(0, 11), "bad.smtp:3:");
  EXPECT_FALSE(parse_script("# rfc: RFC 1\nS: 220\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("missing '# case:'"), std::string::npos);
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nRAW: \\q\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nS: 250 /[/\n", "bad.smtp", error));
  // Patterns std::regex cannot take safely are refused before compiling (found by fuzzing).
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nS: 250 /a{7777777777777777777}/\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("limited to 999"), std::string::npos);
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nS: 250 /" + std::string(201, 'a') + "/\n", "bad.smtp", error));
  EXPECT_TRUE(parse_script("# case: x\n# rfc: RFC 1\n# quote: q MUST\n!S: 250 /a{2,999}/\n", "ok.smtp", error));
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\nS: 250 /(a)\\22222222222222222222/\n", "bad.smtp", error));
  EXPECT_TRUE(parse_script("# case: x\n# rfc: RFC 1\n# quote: q MUST\n!S: 250 /^\\d+ \\w+\\.test$/\n", "ok.smtp", error)) << error.message;
  EXPECT_FALSE(parse_script("# case: x\n# rfc: RFC 1\n# level: OFTEN\nS: 250\n", "bad.smtp", error));
}

TEST(Script, Substitution) {
  std::string missing;
  EXPECT_EQ(substitute("MAIL FROM:<${sender}>", {{"sender", "a@b"}}, missing), "MAIL FROM:<a@b>");
  EXPECT_TRUE(missing.empty());
  substitute("${nope}", {}, missing);
  EXPECT_EQ(missing, "nope");
}

TEST(Script, DeliveryPortAndWriteSteps) {
  ParseError error;
  auto s = parse_script(
      "# case: x\n# rfc: RFC 5321 §1\n# title: t\n# quote: It MUST.\n# port: submission\n# delivery: optional\n"
      "S: 220\nSPLIT: 3\nBDAT: a\\r\\n\nBDAT LAST: \nCLOSE\n!DELIVERED: 0|1\nBODY: x\\x00\n",
      "f.smtp", error);
  ASSERT_TRUE(s) << error.message;
  EXPECT_EQ(s->port, "submission");
  EXPECT_TRUE(s->delivery_optional);
  EXPECT_TRUE(s->checks_delivery());
  ASSERT_EQ(s->steps.size(), 7u);
  EXPECT_EQ(s->steps[1].ms, 3);
  EXPECT_EQ(s->steps[2].text, "a\r\n");
  EXPECT_FALSE(s->steps[2].last);
  EXPECT_TRUE(s->steps[3].last);
  EXPECT_EQ(s->steps[4].kind, Step::Kind::close);
  EXPECT_EQ(s->steps[5].counts, (std::vector<int>{0, 1}));
  EXPECT_EQ(s->steps[6].text, std::string("x\0", 2));
  const std::string h = "# case: x\n# rfc: RFC 1\n";
  EXPECT_FALSE(parse_script(h + "# port: lmtp\nS: 220\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "DELIVERED: many\n", "bad.smtp", error));
  EXPECT_NE(error.message.find("bad.smtp:3: DELIVERED:"), std::string::npos) << error.message;
  EXPECT_FALSE(parse_script(h + "DELIVERED: 101\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "DELIVERED: 1|\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "DELIVERED: 1|2+\n", "bad.smtp", error));
  auto least = parse_script(h + "# quote: It MUST.\n!DELIVERED: 2+\n", "ok.smtp", error);
  ASSERT_TRUE(least) << error.message;
  EXPECT_TRUE(least->steps[0].at_least);
  EXPECT_EQ(least->steps[0].counts, (std::vector<int>{2}));
  EXPECT_FALSE(parse_script(h + "SPLIT: 0\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "TIMEOUT: 0\n", "bad.smtp", error));
  auto t = parse_script(h + "# quote: It MUST.\nTIMEOUT: 1500\n!S: 220\n", "ok.smtp", error);
  ASSERT_TRUE(t) << error.message;
  EXPECT_EQ(t->steps[0].kind, Step::Kind::timeout);
  EXPECT_EQ(t->steps[0].ms, 1500);
  EXPECT_FALSE(parse_script(h + "BODY: \\q\n", "bad.smtp", error));
  EXPECT_FALSE(parse_script(h + "# delivery: maybe\nS: 220\n", "bad.smtp", error));
}
