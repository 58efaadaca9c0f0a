#pragma once
// One process per spool (a second Queue on it would overwrite the first one's messages): an
// exclusive flock on SPOOL/lock, held while the SpoolLock lives and let go when the process
// dies. refsmtpd takes it at start; `refsmtpd queue` takes it to work on a stopped spool.
#include <string>

namespace refsmtp::queue {

class SpoolLock {
 public:
  enum class Status { held, busy, error };
  SpoolLock() = default;
  ~SpoolLock();
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;

  // Takes the lock of the spool in `dir` without waiting; `error` says why when it is not held.
  Status take(const std::string& dir, std::string& error);

 private:
  int fd_ = -1;
};

}  // namespace refsmtp::queue
