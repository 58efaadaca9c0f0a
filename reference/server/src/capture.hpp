#pragma once
// --test-mode's store: every accepted message captured instead of queued, with its envelope in
// header fields a test can read. Either one file per message in a directory (NAME.eml, renamed
// into place whole, so a reader never sees a part) or one mboxrd entry per message appended to
// an mbox file (RFC 4155, under the fcntl lock mbox readers take). Test mode promises no
// durability: no fsync.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include "refsmtp/queue/storage.hpp"
#include "refsmtp/smtp/server_session.hpp"

namespace refsmtp::server {

class CaptureStore {
 public:
  // Exactly one of `dir` and `mbox`; the directory is created if missing. Nothing, with `error`
  // set, when it cannot be used.
  static std::unique_ptr<CaptureStore> open(const std::string& dir, const std::string& mbox, std::string& error);

  // Captures one message; `name` says where (a file name, or an offset in the mbox).
  std::error_code store(const smtp::Envelope& envelope, std::string_view body, std::int64_t now_ms, std::string& name);

 private:
  CaptureStore() = default;
  std::unique_ptr<queue::PosixStorage> dir_;  // --capture-dir
  std::atomic<std::uint64_t> count_{0};
  // --capture-mbox: the file, open for appending; an entry is appended whole under mbox_m_.
  std::string mbox_;
  struct Fd {
    int fd = -1;
    ~Fd();
  } mbox_fd_;
  bool mbox_torn_ = false;  // a failed append could not be cut back off: every later one fails
  std::mutex mbox_m_;
};

}  // namespace refsmtp::server
