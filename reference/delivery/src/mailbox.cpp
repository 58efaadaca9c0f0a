#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <thread>

#include "refsmtp/delivery/mailbox.hpp"

namespace refsmtp::delivery {

namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }
}  // namespace

std::string to_lf(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\r' && i + 1 < message.size() && message[i + 1] == '\n') continue;
    out += message[i];
  }
  return out;
}

std::string local_copy(const smtp::Path& sender, std::string_view message) {
  return "Return-Path: " + sender.to_string() + "\n" + to_lf(message);
}

std::error_code deliver_maildir(queue::Storage& s, const MaildirTarget& t, std::string_view message, std::string& name) {
  for (const char* sub : {"/tmp", "/new", "/cur"}) {
    if (auto e = s.mkdirs(t.dir + sub)) return e;
  }
  std::string host;
  for (char c : t.hostname) {
    if (c == '/') host += "\\057";
    else if (c == ':') host += "\\072";
    else host += c;
  }
  const long long seconds = t.now_ms / 1000;
  const long long micros = (t.now_ms % 1000) * 1000;
  const auto write = [&](const std::string& n) {
    return t.sync_dir ? queue::write_durably(s, t.dir + "/tmp", t.dir + "/new", n, message, /*replace=*/false)
                      : queue::write_and_rename(s, t.dir + "/tmp", t.dir + "/new", n, message, /*replace=*/false);
  };
  if (!t.idempotency_key.empty()) {
    std::string key;
    for (char c : t.idempotency_key) key += (c == '/' || c == ':' || c == '.') ? '_' : c;
    name = std::to_string(seconds) + ".K" + key + "." + host;
    // Already there: an earlier attempt got this far (before a crash, or before an fsync of
    // new/ failed). It is the same message; its name is made durable now (by the caller, when
    // sync_dir is false).
    const auto e = write(name);
    if (e != std::errc::file_exists) return e;
    return t.sync_dir ? s.fsync_dir(t.dir + "/new") : std::error_code();
  }
  std::error_code e;
  // A name already in new/ (pid and sequence reused after a restart, clock stepped back) is
  // never overwritten: try the following sequence numbers instead.
  for (std::uint64_t k = 0; k < 100; ++k) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%lld.M%lldP%ldQ%llu.", seconds, micros, t.pid, static_cast<unsigned long long>(t.sequence + k));
    name = buf + host;
    e = write(name);
    if (e != std::errc::file_exists) break;
  }
  return e;
}

std::string mbox_entry(const smtp::Path& sender, std::int64_t now_ms, std::string_view message) {
  // RFC 4155 §2: "From " + sender + " " + asctime-like UTC date.
  const std::time_t secs = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
  std::string from = sender.is_null() ? std::string("MAILER-DAEMON") : sender.mailbox->to_string();
  for (char& c : from) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';  // the From line must stay one token
  }
  std::string out = "From " + from + " " + date + "\n";
  std::size_t pos = 0;
  while (pos < message.size()) {
    const std::size_t lf = message.find('\n', pos);
    const std::string_view line = message.substr(pos, lf == std::string_view::npos ? std::string_view::npos : lf - pos);
    std::size_t k = 0;
    while (k < line.size() && line[k] == '>') ++k;
    if (line.substr(k).starts_with("From ")) out += '>';  // mboxrd
    out += line;
    out += '\n';
    if (lf == std::string_view::npos) break;
    pos = lf + 1;
  }
  out += '\n';
  return out;
}

std::error_code append_mbox(int fd, std::string_view entry, const MboxOptions& options, std::uint64_t& offset, bool& torn) {
  torn = false;
  struct flock fl{};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  // Bounded like the dot-lock: a reader holding the lock must not stall delivery forever.
  for (int tries = 0;; ++tries) {
    if (::fcntl(fd, F_SETLK, &fl) == 0) break;
    if ((errno != EACCES && errno != EAGAIN) || tries + 1 >= options.attempts) {
      return (errno == EACCES || errno == EAGAIN) ? std::make_error_code(std::errc::resource_unavailable_try_again) : last_error();
    }
    std::this_thread::sleep_for(options.wait);
  }
  std::error_code err;
  struct stat st{};
  if (::fstat(fd, &st) != 0) err = last_error();
  const off_t original = st.st_size;
  offset = static_cast<std::uint64_t>(original);
  std::string_view rest = entry;
  while (!err && !rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      err = last_error();
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (!err && options.sync && ::fsync(fd) != 0) err = last_error();
  if (err && rest.size() != entry.size()) {
    // Leave the mailbox as it was (a half message would corrupt the next "From " line).
    if (::ftruncate(fd, original) != 0) torn = true;
    else if (options.sync) ::fsync(fd);
  }
  fl.l_type = F_UNLCK;
  ::fcntl(fd, F_SETLK, &fl);
  return err;
}

std::error_code deliver_mbox(const std::string& path, const smtp::Path& sender, std::int64_t now_ms,
                             std::string_view message, const MboxOptions& options) {
  const std::string entry = mbox_entry(sender, now_ms, message);
  // Dot-lock first (for readers that only know dot-locks), bounded retries.
  const std::string lock = path + ".lock";
  int lock_fd = -1;
  for (int tries = 0; tries < options.attempts; ++tries) {
    if (tries > 0) std::this_thread::sleep_for(options.wait);
    lock_fd = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (lock_fd >= 0 || errno != EEXIST) break;
    // A dot-lock older than `stale` was left by a process that died: take it over (as procmail
    // and mutt do).
    struct stat lst{};
    if (::lstat(lock.c_str(), &lst) == 0 && now_ms / 1000 - lst.st_mtime > options.stale.count()) ::unlink(lock.c_str());
  }
  if (lock_fd < 0) return errno == EEXIST ? std::make_error_code(std::errc::resource_unavailable_try_again) : last_error();
  ::close(lock_fd);
  std::error_code err;
  // O_NOFOLLOW and the checks below: a symlink or hard link planted where the mailbox should be
  // must not redirect a delivery into another file.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    err = last_error();
    ::unlink(lock.c_str());
    return err;
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    err = last_error();
  } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    err = std::make_error_code(std::errc::operation_not_permitted);
  }
  std::uint64_t offset = 0;
  bool torn = false;
  if (!err) err = append_mbox(fd, entry, options, offset, torn);
  ::close(fd);
  ::unlink(lock.c_str());
  return err;
}

}  // namespace refsmtp::delivery
