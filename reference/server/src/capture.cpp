#include "capture.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "refsmtp/delivery/mailbox.hpp"

namespace refsmtp::server {

CaptureStore::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

std::unique_ptr<CaptureStore> CaptureStore::open(const std::string& dir, const std::string& mbox, std::string& error) {
  if (dir.empty() == mbox.empty()) {
    error = "--test-mode needs one of --capture-dir DIR and --capture-mbox FILE";
    return nullptr;
  }
  std::unique_ptr<CaptureStore> c(new CaptureStore);
  std::error_code ec;
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec || !std::filesystem::is_directory(dir, ec)) {
      error = "cannot use --capture-dir " + dir + ": " + (ec ? ec.message() : "not a directory");
      return nullptr;
    }
    c->dir_ = std::make_unique<queue::PosixStorage>(dir);
    return c;
  }
  // O_NOFOLLOW and a regular file only, as for mbox delivery.
  const int fd = ::open(mbox.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  struct stat st{};
  const char* why = nullptr;
  if (fd < 0 || ::fstat(fd, &st) != 0) why = std::strerror(errno);
  else if (!S_ISREG(st.st_mode)) why = "not a regular file";
  if (why) {
    error = "cannot open --capture-mbox " + mbox + ": " + why;
    if (fd >= 0) ::close(fd);
    return nullptr;
  }
  c->mbox_fd_.fd = fd;
  c->mbox_ = mbox;
  return c;
}

std::error_code CaptureStore::store(const smtp::Envelope& envelope, std::string_view body, std::int64_t now_ms,
                                    std::string& name) {
  // The envelope as header fields. A capture file holds them, a blank line, then the message
  // exactly as received; an mbox entry has them as its first header fields (as Return-Path: and
  // Delivered-To: are added), so that mail readers see the message's own.
  std::string text = "X-Refsmtp-Mail-From: " + envelope.reverse_path.to_string() + "\r\n";
  for (const auto& r : envelope.recipients) text += "X-Refsmtp-Rcpt-To: " + r.path.to_string() + "\r\n";
  if (dir_) {
    text += "\r\n";
    text += body;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%013lld-%06llu.eml", static_cast<long long>(now_ms),
                  static_cast<unsigned long long>(++count_));
    name = buf;
    const std::string tmp = name + ".tmp";
    queue::Storage::Handle h{};
    if (auto err = dir_->create(tmp, h)) return err;
    std::error_code err = dir_->write(h, text);
    if (auto close_err = dir_->close(h); !err) err = close_err;
    if (!err) err = dir_->rename(tmp, name);
    if (err) dir_->unlink(tmp);
    return err;
  }
  text += body;
  const std::string entry = delivery::mbox_entry(envelope.reverse_path, now_ms, delivery::to_lf(text));
  delivery::MboxOptions options;
  options.attempts = 20;  // a reader holds the lock: 100 ms at most
  options.wait = std::chrono::milliseconds(5);
  options.sync = false;
  std::lock_guard lock(mbox_m_);
  if (mbox_torn_) return std::make_error_code(std::errc::io_error);
  std::uint64_t offset = 0;
  if (auto err = delivery::append_mbox(mbox_fd_.fd, entry, options, offset, mbox_torn_)) return err;
  name = "offset " + std::to_string(offset) + " of " + mbox_;
  return {};
}

}  // namespace refsmtp::server
