// The queue's control requests, as `refsmtpd queue` sends them, against a real queue on disk.
#include <gtest/gtest.h>

#include "control.hpp"
#include "refsmtp/queue/storage.hpp"
#include "refsmtp/testing/temp_dir.hpp"

namespace refsmtp::server {
namespace {

smtp::Envelope envelope() {
  smtp::Envelope e;
  e.helo = "client.test";
  e.reverse_path = smtp::make_path("a", "client.test");
  e.recipients.push_back({smtp::make_path("b", "mx.test"), {}});
  return e;
}

TEST(Control, EveryRequestAndItsErrors) {
  refsmtp::testing::TempDir dir;
  queue::PosixStorage storage(dir.path());
  queue::Queue q(storage, queue::QueueConfig{});
  ASSERT_FALSE(q.open(0));
  const auto r = q.accept(envelope(), "Subject: t\r\n\r\nx\r\n", queue::ClientInfo{"client.test", "192.0.2.1", true, false, false}, 1000);
  ASSERT_TRUE(r.id);
  const std::string id = *r.id;
  std::set<std::string> busy;
  auto ask = [&](const std::string& line) {
    return control_request(q, line, 2000, [&](const std::string& i) { return busy.count(i) != 0; });
  };
  const std::string list = ask("list");
  EXPECT_TRUE(list.starts_with("ok\n" + id + " 1970-01-01T00:00:01Z ")) << list;
  EXPECT_NE(list.find(" <a@client.test> 1/1 "), std::string::npos) << list;
  const std::string show = ask("show " + id);
  EXPECT_NE(show.find("rcpt <b@mx.test> pending"), std::string::npos) << show;
  EXPECT_EQ(ask("show nope"), "error: no message nope in the queue\n");
  EXPECT_EQ(ask("hold " + id), "ok\n");
  EXPECT_NE(ask("list").find(" held\n"), std::string::npos);
  EXPECT_EQ(ask("flush " + id), "error: " + id + " is on hold (release it)\n");
  EXPECT_EQ(ask("release " + id), "ok\n");
  EXPECT_EQ(ask("flush"), "ok\n");
  busy.insert(id);
  EXPECT_EQ(ask("delete " + id), "error: " + id + " is being relayed right now; try again in a moment\n");
  busy.clear();
  EXPECT_EQ(ask("delete " + id), "ok\n");
  EXPECT_EQ(ask("list"), "ok\n");
  EXPECT_EQ(ask("list extra words"), "error: too many arguments\n");
  EXPECT_TRUE(ask("frobnicate").starts_with("error: unknown request 'frobnicate'"));
  EXPECT_TRUE(ask("hold").starts_with("error: unknown request"));  // hold needs an ID
}

}  // namespace
}  // namespace refsmtp::server
