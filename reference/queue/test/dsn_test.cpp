// RFC 3464 DSN structure and the RFC 5321 §4.4 trace header.
#include <gtest/gtest.h>


#include "refsmtp/queue/dsn.hpp"

using refsmtp::smtp::make_path;

using namespace refsmtp::queue;

namespace {
}  // namespace

TEST(Dsn, Rfc5322Date) {
  EXPECT_EQ(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(1'795'912'276'000), "Sun, 29 Nov 2026 00:31:16 +0000");
}

TEST(Dsn, ReceivedHeader) {
  TraceInfo t{"client.test", "192.0.2.1", "mx.test", "ABC", true, true, false, false, {make_path("r", "mx.test")}, 0};
  EXPECT_EQ(received_header(t),
            "Received: from client.test (192.0.2.1)\r\n\tby mx.test (refsmtp) with ESMTPS id ABC\r\n\tfor <r@mx.test>; "
            "Thu, 01 Jan 1970 00:00:00 +0000\r\n");
  t.recipients.push_back(make_path("s", "mx.test"));  // several: "for" is left out
  t.helo = "evil\r\nX-Injected: 1";
  const std::string h = received_header(t);
  EXPECT_EQ(h.find("for <"), std::string::npos);
  EXPECT_EQ(h.find("\r\nX-Injected"), std::string::npos);
}

TEST(Dsn, StatusOfReply) {
  EXPECT_EQ(status_of("550 5.1.1 no such user", true), "5.1.1");
  EXPECT_EQ(status_of("550 no such user", true), "5.0.0");
  EXPECT_EQ(status_of("451 4.3.0 later", false), "4.3.0");
  EXPECT_EQ(status_of("451 4.3.0 later", true), "5.0.0");  // class must agree
}

TEST(Dsn, NamesTheRemoteMtaThatGaveTheReply) {  // RFC 3464 §2.3.5
  DsnInput in;
  in.reporting_mta = "mx.test";
  in.original_id = "Q1";
  in.to = make_path("alice", "example.com");
  in.recipients = {{make_path("bob", "example.org"), false, "5.1.1", "550 5.1.1 no such user", "mx.example.org"},
                   {make_path("carol", "example.org"), false, "5.1.10", "556 5.1.10 null MX"}};
  const std::string m = make_dsn(in);
  EXPECT_NE(m.find("Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                   "Remote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("Final-Recipient: rfc822; carol@example.org\r\nAction: failed\r\nStatus: 5.1.10\r\n"
                   "Diagnostic-Code: smtp; 556 5.1.10 null MX\r\n"),
            std::string::npos);
  EXPECT_EQ(m.find("Remote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 556"), std::string::npos);
}

TEST(Dsn, MultipartReportShape) {  // RFC 3464 §2, RFC 6522
  DsnInput in;
  in.reporting_mta = "mx.test";
  in.original_id = "Q1";
  in.postmaster = "MAILER-DAEMON@mx.test";
  in.to = make_path("alice", "example.com");
  in.recipients = {{make_path("bob", "example.org"), false, "5.1.1", "550 5.1.1 no such user"}};
  in.original_headers = "Subject: hello\r\nFrom: alice@example.com\r\n";
  const std::string m = make_dsn(in);
  EXPECT_NE(m.find("Content-Type: multipart/report; report-type=delivery-status;"), std::string::npos);
  EXPECT_NE(m.find("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n"), std::string::npos);
  EXPECT_NE(m.find("Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                   "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"), std::string::npos);
  EXPECT_NE(m.find("Auto-Submitted: auto-replied\r\n"), std::string::npos);
  EXPECT_EQ(m.find("Remote-MTA:"), std::string::npos) << "decided here: no remote MTA is named (RFC 3464 §2.3.5)";
  EXPECT_TRUE(m.ends_with("--refsmtp-dsn-Q1--\r\n"));
  // Only CRLF line ends.
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << i;
  }
}

TEST(Dsn, ReceivedWithTypes) {  // RFC 3848, RFC 6531 §3.7.4
  TraceInfo t{"c", "a", "h", "I", true, true, true, false, {}, 0};
  EXPECT_NE(received_header(t).find(" with ESMTPSA id "), std::string::npos);
  t.smtputf8 = true;
  EXPECT_NE(received_header(t).find(" with UTF8SMTPSA id "), std::string::npos);
  t.tls = t.authenticated = false;
  EXPECT_NE(received_header(t).find(" with UTF8SMTP id "), std::string::npos);
  t.smtputf8 = false;
  t.esmtp = false;
  EXPECT_NE(received_header(t).find(" with SMTP id "), std::string::npos);
}

TEST(Dsn, DelayedReportAndBoundary) {  // RFC 3464 §2.3.3 Action: delayed
  DsnInput in;
  in.reporting_mta = "mx.test";
  in.original_id = "Q2";
  in.to = make_path("alice", "example.com");
  in.recipients = {{make_path("bob", "example.org"), true, "4.4.1", "451 4.4.1 no answer"}};
  in.boundary = "b-1234";
  const std::string m = make_dsn(in);
  EXPECT_NE(m.find("Subject: Delayed Mail (still being retried)"), std::string::npos);
  EXPECT_NE(m.find("Action: delayed\r\nStatus: 4.4.1\r\n"), std::string::npos);
  EXPECT_NE(m.find("boundary=\"b-1234\""), std::string::npos);
  EXPECT_EQ(m.find("text/rfc822-headers"), std::string::npos);  // no original headers: no part 3
  EXPECT_TRUE(m.ends_with("--b-1234--\r\n"));
}
