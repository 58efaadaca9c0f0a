#include "refsmtp/queue/spool_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace refsmtp::queue {

SpoolLock::~SpoolLock() {
  if (fd_ >= 0) ::close(fd_);
}

SpoolLock::Status SpoolLock::take(const std::string& dir, std::string& error) {
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return Status::error;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const bool busy = errno == EWOULDBLOCK;
    error = busy ? "another process (refsmtpd, or refsmtpd queue) is using this spool" : std::string("cannot lock ") + path + ": " + std::strerror(errno);
    ::close(fd);
    return busy ? Status::busy : Status::error;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return Status::held;
}

}  // namespace refsmtp::queue
