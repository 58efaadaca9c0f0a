#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "refsmtp/queue/storage.hpp"

namespace refsmtp::queue {

namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }
}  // namespace

std::error_code write_and_rename(Storage& s, const std::string& tmp_dir, const std::string& dir, const std::string& name,
                                 std::string_view data, bool replace) {
  const std::string tmp = tmp_dir + "/" + name;
  s.unlink(tmp);  // a leftover from an interrupted earlier attempt
  Storage::Handle h = -1;
  if (auto e = s.create(tmp, h)) return e;
  std::error_code e = s.write(h, data);
  if (!e) e = s.fsync(h);
  const std::error_code c = s.close(h);
  if (!e) e = c;
  if (!e) e = replace ? s.rename(tmp, dir + "/" + name) : s.rename_noreplace(tmp, dir + "/" + name);
  if (e) s.unlink(tmp);
  return e;
}

std::error_code write_durably(Storage& s, const std::string& tmp_dir, const std::string& dir, const std::string& name,
                              std::string_view data, bool replace) {
  if (auto e = write_and_rename(s, tmp_dir, dir, name, data, replace)) return e;
  return s.fsync_dir(dir);
}

PosixStorage::PosixStorage(std::string root) : root_(std::move(root)) {}
PosixStorage::~PosixStorage() = default;

std::string PosixStorage::full(const std::string& path) const { return root_ + "/" + path; }

std::error_code PosixStorage::create(const std::string& path, Handle& out) {
  const int fd = ::open(full(path).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return last_error();
  out = fd;
  return {};
}

std::error_code PosixStorage::write(Handle h, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(h, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code PosixStorage::fsync(Handle h) { return ::fsync(h) == 0 ? std::error_code() : last_error(); }
std::error_code PosixStorage::close(Handle h) { return ::close(h) == 0 ? std::error_code() : last_error(); }

std::error_code PosixStorage::rename(const std::string& from, const std::string& to) {
  return ::rename(full(from).c_str(), full(to).c_str()) == 0 ? std::error_code() : last_error();
}

std::error_code PosixStorage::rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, full(from).c_str(), AT_FDCWD, full(to).c_str(), RENAME_NOREPLACE) == 0) return {};
  if (errno != EINVAL && errno != ENOSYS) return last_error();
  // File systems without RENAME_NOREPLACE: link() never replaces, then drop the old name.
  if (::link(full(from).c_str(), full(to).c_str()) != 0) return last_error();
  ::unlink(full(from).c_str());
  return {};
}

std::error_code PosixStorage::unlink(const std::string& path) {
  return ::unlink(full(path).c_str()) == 0 ? std::error_code() : last_error();
}

std::error_code PosixStorage::fsync_dir(const std::string& dir) {
  const int fd = ::open(full(dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  std::error_code e;
  if (::fsync(fd) != 0) e = last_error();
  ::close(fd);
  return e;
}

std::error_code PosixStorage::mkdirs(const std::string& dir) {
  std::string parent = root_;
  std::size_t pos = 0;
  while (pos <= dir.size()) {
    const std::size_t slash = dir.find('/', pos);
    const std::size_t end = slash == std::string::npos ? dir.size() : slash;
    const std::string path = parent + "/" + dir.substr(pos, end - pos);
    if (::mkdir(path.c_str(), 0700) == 0) {
      // A new directory entry is durable only once its parent is synced: without this, a
      // first-use queue/ or Maildir new/ could vanish in a crash with the mail in it.
      const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return last_error();
      const bool ok = ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return last_error();
    } else if (errno != EEXIST) {
      return last_error();
    }
    if (slash == std::string::npos) break;
    parent = path;
    pos = slash + 1;
  }
  return {};
}

std::error_code PosixStorage::list(const std::string& dir, std::vector<std::string>& names) {
  names.clear();
  DIR* d = ::opendir(full(dir).c_str());
  if (!d) return last_error();
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return {};
}

std::error_code PosixStorage::read(const std::string& path, std::string& data) {
  data.clear();
  const int fd = ::open(full(path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return last_error();
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto e = last_error();
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return {};
}

std::error_code PosixStorage::read_range(const std::string& path, std::uint64_t offset, std::size_t size, std::string& data) {
  data.assign(size, '\0');
  const int fd = ::open(full(path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return last_error();
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, data.data() + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto e = last_error();
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got != size) return std::make_error_code(std::errc::io_error);
  return {};
}

}  // namespace refsmtp::queue
