#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "refsmtp/queue/storage.hpp"

namespace refsmtp::queue {

namespace {

struct Inode {
  std::string data;    // what a reader sees now
  std::string synced;  // what survives a crash
  // A failed fsync loses what it was to write, as Linux does: the pages are marked clean, the
  // error is reported once, and a later fsync succeeds without them. These ranges of `data`
  // reach the disk as zeros, whatever later fsyncs say.
  std::vector<std::pair<std::size_t, std::size_t>> lost;
};
using Dir = std::map<std::string, std::shared_ptr<Inode>>;

std::pair<std::string, std::string> split(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::error_code err(std::errc e) { return std::make_error_code(e); }

}  // namespace

struct MemoryStorage::State {
  std::map<std::string, Dir> current;  // directory -> entries as seen now
  std::map<std::string, Dir> durable;  // directory -> entries as of its last fsync_dir
  std::map<Handle, std::shared_ptr<Inode>> open;
  Handle next_handle = 3;
  std::size_t ops = 0;
  std::map<std::size_t, Fault> plan;
  bool crashed = false;

  // Counts one mutating operation; returns the fault to apply to it, if any.
  Fault step() {
    const std::size_t n = ops++;
    if (crashed) return Fault::eio;
    auto it = plan.find(n);
    if (it == plan.end()) return Fault::none;
    if (it->second == Fault::crash) crashed = true;
    return it->second;
  }
  static std::error_code as_error(Fault f) {
    switch (f) {
      case Fault::enospc:
      case Fault::short_write: return err(std::errc::no_space_on_device);
      default: return err(std::errc::io_error);
    }
  }
};

MemoryStorage::MemoryStorage() : st_(std::make_unique<State>()) {
  st_->current[""];
  st_->durable[""];
}
MemoryStorage::~MemoryStorage() = default;

void MemoryStorage::inject(std::size_t op, Fault kind) { st_->plan[op] = kind; }
std::size_t MemoryStorage::operations() const { return st_->ops; }
bool MemoryStorage::crashed() const { return st_->crashed; }

void MemoryStorage::crash_and_restart() {
  st_->open.clear();
  st_->current = st_->durable;
  for (auto& [name, dir] : st_->current) {
    for (auto& [file, inode] : dir) {
      inode->data = inode->synced;
      inode->lost.clear();  // what the disk holds is all there is now
    }
  }
  st_->plan.clear();
  st_->crashed = false;
}

std::error_code MemoryStorage::create(const std::string& path, Handle& out) {
  if (Fault f = st_->step(); f != Fault::none) return State::as_error(f);
  auto [dir, name] = split(path);
  auto d = st_->current.find(dir);
  if (d == st_->current.end()) return err(std::errc::no_such_file_or_directory);
  if (d->second.count(name)) return err(std::errc::file_exists);
  auto inode = std::make_shared<Inode>();
  d->second[name] = inode;
  out = st_->next_handle++;
  st_->open[out] = inode;
  return {};
}

std::error_code MemoryStorage::write(Handle h, std::string_view data) {
  const Fault f = st_->step();
  auto it = st_->open.find(h);
  if (it == st_->open.end()) return err(std::errc::bad_file_descriptor);
  if (f == Fault::short_write) {
    it->second->data.append(data.substr(0, data.size() / 2));
    return State::as_error(f);
  }
  if (f != Fault::none) return State::as_error(f);
  it->second->data.append(data);
  return {};
}

std::error_code MemoryStorage::fsync(Handle h) {
  const Fault f = st_->step();
  auto it = st_->open.find(h);
  if (f != Fault::none) {
    if (it != st_->open.end() && f != Fault::crash) {
      Inode& i = *it->second;
      i.lost.emplace_back(i.synced.size(), i.data.size());
    }
    return State::as_error(f);
  }
  if (it == st_->open.end()) return err(std::errc::bad_file_descriptor);
  Inode& i = *it->second;
  i.synced = i.data;
  for (const auto& [from, to] : i.lost) {
    for (std::size_t k = from; k < to && k < i.synced.size(); ++k) i.synced[k] = '\0';
  }
  return {};
}

std::error_code MemoryStorage::close(Handle h) {
  const Fault f = st_->step();
  st_->open.erase(h);  // the descriptor is gone whatever close returns (POSIX)
  if (f != Fault::none) return State::as_error(f);
  return {};
}

std::error_code MemoryStorage::rename(const std::string& from, const std::string& to) {
  return move_entry(from, to, true);
}

std::error_code MemoryStorage::rename_noreplace(const std::string& from, const std::string& to) {
  return move_entry(from, to, false);
}

std::error_code MemoryStorage::move_entry(const std::string& from, const std::string& to, bool replace) {
  if (Fault f = st_->step(); f != Fault::none) return State::as_error(f);
  auto [fdir, fname] = split(from);
  auto [tdir, tname] = split(to);
  auto fd = st_->current.find(fdir);
  auto td = st_->current.find(tdir);
  if (fd == st_->current.end() || td == st_->current.end()) return err(std::errc::no_such_file_or_directory);
  auto entry = fd->second.find(fname);
  if (entry == fd->second.end()) return err(std::errc::no_such_file_or_directory);
  if (!replace && td->second.count(tname)) return err(std::errc::file_exists);
  auto inode = entry->second;
  fd->second.erase(entry);
  td->second[tname] = inode;
  return {};
}

std::error_code MemoryStorage::unlink(const std::string& path) {
  if (Fault f = st_->step(); f != Fault::none) return State::as_error(f);
  auto [dir, name] = split(path);
  auto d = st_->current.find(dir);
  if (d == st_->current.end() || !d->second.erase(name)) return err(std::errc::no_such_file_or_directory);
  return {};
}

std::error_code MemoryStorage::fsync_dir(const std::string& dir) {
  if (Fault f = st_->step(); f != Fault::none) return State::as_error(f);
  auto d = st_->current.find(dir);
  if (d == st_->current.end()) return err(std::errc::no_such_file_or_directory);
  st_->durable[dir] = d->second;
  return {};
}

std::error_code MemoryStorage::mkdirs(const std::string& dir) {
  if (st_->crashed) return err(std::errc::io_error);
  std::size_t pos = 0;
  while (true) {
    const std::size_t slash = dir.find('/', pos);
    const std::string prefix = dir.substr(0, slash);
    st_->current[prefix];
    st_->durable[prefix];
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return {};
}

std::error_code MemoryStorage::list(const std::string& dir, std::vector<std::string>& names) {
  names.clear();
  if (st_->crashed) return err(std::errc::io_error);
  auto d = st_->current.find(dir);
  if (d == st_->current.end()) return err(std::errc::no_such_file_or_directory);
  for (const auto& [name, inode] : d->second) names.push_back(name);
  return {};
}

std::error_code MemoryStorage::read(const std::string& path, std::string& data) {
  if (st_->crashed) return err(std::errc::io_error);
  auto [dir, name] = split(path);
  auto d = st_->current.find(dir);
  if (d == st_->current.end()) return err(std::errc::no_such_file_or_directory);
  auto f = d->second.find(name);
  if (f == d->second.end()) return err(std::errc::no_such_file_or_directory);
  data = f->second->data;
  return {};
}

std::error_code MemoryStorage::read_range(const std::string& path, std::uint64_t offset, std::size_t size, std::string& data) {
  std::string all;
  if (auto e = read(path, all)) return e;
  if (offset > all.size() || size > all.size() - offset) return err(std::errc::io_error);
  data = all.substr(static_cast<std::size_t>(offset), size);
  return {};
}

}  // namespace refsmtp::queue
