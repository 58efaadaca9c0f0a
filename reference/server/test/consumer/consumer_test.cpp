// Uses the installed refsmtp::testserver: start it, talk SMTP to it over a plain socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <refsmtp/server/test_server.hpp>
#include <string>

namespace {
std::string talk(int fd, const std::string& line) {
  if (!line.empty()) (void)!::write(fd, line.data(), line.size());
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}
}  // namespace

TEST(InstalledPackage, TestServerReceivesAMessage) {
  refsmtp::TestServer smtp;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(smtp.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(talk(fd, "").substr(0, 4), "220 ");
  EXPECT_EQ(talk(fd, "HELO consumer.test\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(talk(fd, "MAIL FROM:<a@consumer.test>\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(talk(fd, "RCPT TO:<b@example.test>\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(talk(fd, "DATA\r\n").substr(0, 4), "354 ");
  EXPECT_EQ(talk(fd, "Subject: hi\r\n\r\nhello\r\n.\r\n").substr(0, 4), "250 ");
  ::close(fd);
  ASSERT_TRUE(smtp.wait_for(1, std::chrono::seconds(5)));
  EXPECT_EQ(smtp.messages()[0].body, "Subject: hi\r\n\r\nhello\r\n");
}
