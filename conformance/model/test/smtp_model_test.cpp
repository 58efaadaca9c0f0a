// The model is a transcription of RFC 5321 §4.1.4 and §4.3.2; these tests pin the rules it encodes
// so an edit to the table is a visible decision.
#include "refsmtp/model/smtp_model.hpp"

#include <gtest/gtest.h>

using namespace refsmtp::model;

TEST(SmtpModel, MailOnlyAfterGreetingAndOutsideATransaction) {  // §4.1.4
  EXPECT_EQ(allowed(State::initial, Input::mail), std::set<int>{503});
  EXPECT_TRUE(allowed(State::ready, Input::mail).contains(250));
  EXPECT_EQ(allowed(State::mail, Input::mail), std::set<int>{503});
  EXPECT_EQ(allowed(State::rcpt, Input::mail), std::set<int>{503});
}

TEST(SmtpModel, RcptNeedsMail) {  // §4.1.4
  EXPECT_EQ(allowed(State::ready, Input::rcpt), std::set<int>{503});
  EXPECT_TRUE(allowed(State::mail, Input::rcpt).contains(250));
  EXPECT_EQ(next(State::mail, Input::rcpt, 250), State::rcpt);
  EXPECT_EQ(next(State::mail, Input::rcpt, 550), State::mail);
}

TEST(SmtpModel, DataNeedsAcceptedRecipient) {  // §3.3, §4.1.4
  EXPECT_FALSE(allowed(State::mail, Input::data).contains(354));
  EXPECT_TRUE(allowed(State::rcpt, Input::data).contains(354));
  EXPECT_EQ(next(State::rcpt, Input::data, 354), State::data);
  EXPECT_EQ(next(State::data, Input::end_of_data, 250), State::ready);
  EXPECT_EQ(next(State::data, Input::end_of_data, 554), State::ready);
}

TEST(SmtpModel, EhloAndRsetResetTheTransaction) {  // §4.1.1.5, §4.1.4
  EXPECT_EQ(next(State::rcpt, Input::ehlo, 250), State::ready);
  EXPECT_EQ(next(State::rcpt, Input::rset, 250), State::ready);
  EXPECT_EQ(next(State::initial, Input::rset, 250), State::initial);
}

TEST(SmtpModel, RefusedGreetingAcceptsOnlyQuit) {  // §3.1
  EXPECT_EQ(allowed(State::refused, Input::mail), std::set<int>{503});
  EXPECT_EQ(allowed(State::refused, Input::quit), std::set<int>{221});
  EXPECT_EQ(next(State::refused, Input::rset, 503), State::refused);
  EXPECT_FALSE(legal_transition(State::refused, State::ready));
}

TEST(SmtpModel, BdatOutcomes) {  // RFC 3030 §2
  EXPECT_TRUE(legal_bdat_outcome(State::rcpt, State::chunking));
  EXPECT_TRUE(legal_bdat_outcome(State::chunking, State::ready));
  EXPECT_TRUE(legal_bdat_outcome(State::mail, State::mail));
  EXPECT_FALSE(legal_bdat_outcome(State::initial, State::chunking));
  EXPECT_FALSE(legal_bdat_outcome(State::ready, State::rcpt));
  EXPECT_FALSE(legal_bdat_outcome(State::mail, State::chunking));
}

TEST(SmtpModel, StarttlsReturnsToInitial) {  // RFC 3207 §4.2
  EXPECT_EQ(next(State::ready, Input::starttls, 220), State::tls_handshake);
  EXPECT_EQ(next(State::tls_handshake, Input::tls_done, 0), State::initial);
  EXPECT_TRUE(allowed(State::tls_handshake, Input::mail).empty());
}

TEST(SmtpModel, LegalTransitions) {
  EXPECT_TRUE(legal_transition(State::ready, State::mail));
  EXPECT_TRUE(legal_transition(State::rcpt, State::data));
  EXPECT_TRUE(legal_transition(State::rcpt, State::bdat));
  EXPECT_FALSE(legal_transition(State::initial, State::mail));
  EXPECT_FALSE(legal_transition(State::ready, State::rcpt));
  EXPECT_FALSE(legal_transition(State::mail, State::data));
  EXPECT_FALSE(legal_transition(State::tls_handshake, State::ready));
  EXPECT_FALSE(legal_transition(State::closed, State::ready));
  EXPECT_FALSE(legal_transition(State::initial, State::auth));
}

TEST(SmtpModel, EveryAllowedCodeIsAValidReplyCode) {  // §4.2: first digit 2-5
  for (State s : kAllStates) {
    for (Input i : kAllInputs) {
      for (int code : allowed(s, i)) {
        if (i == Input::tls_done) continue;
        EXPECT_GE(code, 200) << name(s) << " " << name(i);
        EXPECT_LT(code, 600) << name(s) << " " << name(i);
      }
    }
  }
}
