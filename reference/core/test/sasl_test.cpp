#include <gtest/gtest.h>

#include "refsmtp/core/base64.hpp"
#include "refsmtp/core/sasl.hpp"

using refsmtp::core::base64_encode;
using refsmtp::core::SaslServer;
using Status = SaslServer::Status;

namespace {

std::string plain(std::string_view authzid, std::string_view authcid, std::string_view password) {
  std::string s(authzid);
  s += '\0';
  s += authcid;
  s += '\0';
  s += password;
  return base64_encode(s);
}

TEST(Sasl, PlainWithAnInitialResponse) {
  SaslServer s;
  const auto step = s.start("PLAIN", plain("", "alice", "secret"));
  ASSERT_EQ(step.status, Status::done);
  EXPECT_EQ(s.credentials().authcid, "alice");
  EXPECT_EQ(s.credentials().password, "secret");
  EXPECT_EQ(s.credentials().authzid, "");
}

TEST(Sasl, PlainWithoutOneGetsAnEmptyChallengeThenTheResponse) {
  SaslServer s;
  const auto first = s.start("PLAIN", std::nullopt);
  EXPECT_EQ(first.status, Status::challenge);
  EXPECT_EQ(first.challenge, "");
  ASSERT_EQ(s.respond(plain("bob", "alice", "pw")).status, Status::done);
  EXPECT_EQ(s.credentials().authzid, "bob");  // the host decides whether alice may act as bob
}

TEST(Sasl, PlainNeedsExactlyTwoNulsAndAnAuthenticationIdentity) {
  for (const std::string& bad : {base64_encode("alice"), base64_encode(std::string("a\0b\0c\0d", 7)),
                                 base64_encode(std::string("\0\0pw", 4)), std::string("=")}) {
    SaslServer s;
    EXPECT_EQ(s.start("PLAIN", bad).status, Status::malformed) << bad;
  }
}

TEST(Sasl, LoginAsksForUserThenPassword) {
  SaslServer s;
  EXPECT_EQ(s.start("LOGIN", std::nullopt).challenge, "Username:");
  const auto second = s.respond(base64_encode("alice"));
  EXPECT_EQ(second.status, Status::challenge);
  EXPECT_EQ(second.challenge, "Password:");
  ASSERT_EQ(s.respond(base64_encode("pw")).status, Status::done);
  EXPECT_EQ(s.credentials().authcid, "alice");
  EXPECT_EQ(s.credentials().password, "pw");
  EXPECT_EQ(s.credentials().mechanism, "LOGIN");
}

TEST(Sasl, CancelAndBadBase64EndTheExchange) {
  SaslServer s;
  s.start("LOGIN", std::nullopt);
  EXPECT_EQ(s.respond("*").status, Status::cancelled);
  s.start("LOGIN", std::nullopt);
  EXPECT_EQ(s.respond("not base64!").status, Status::bad_base64);
  EXPECT_EQ(s.start("PLAIN", "AGFsaWNl=x").status, Status::bad_base64);
}

TEST(Sasl, OnlyPlainAndLoginAreSupported) {
  EXPECT_TRUE(SaslServer::supported("PLAIN"));
  EXPECT_TRUE(SaslServer::supported("LOGIN"));
  EXPECT_FALSE(SaslServer::supported("CRAM-MD5"));
  EXPECT_FALSE(SaslServer::supported("plain"));
}

}  // namespace
