#pragma once
// The narrow storage interface the spool and the mailbox writers use: just what a crash-safe
// write needs (create, write, fsync, rename, fsync the directory) plus reading back. Two
// implementations: PosixStorage (real files under a root directory) and MemoryStorage (an
// in-memory file system that models what survives a crash, and injects faults on demand).
//
// Paths are relative to the storage root, '/'-separated, and never absolute.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace refsmtp::queue {

class Storage {
 public:
  virtual ~Storage() = default;
  using Handle = int;

  // Creates `path` exclusively for writing (O_CREAT|O_EXCL): EEXIST if it exists.
  virtual std::error_code create(const std::string& path, Handle& out) = 0;
  // Writes all of `data` or fails; a failed write may have written a prefix (short write).
  virtual std::error_code write(Handle h, std::string_view data) = 0;
  virtual std::error_code fsync(Handle h) = 0;
  virtual std::error_code close(Handle h) = 0;
  virtual std::error_code rename(const std::string& from, const std::string& to) = 0;
  // Like rename, but fails with EEXIST instead of replacing an existing `to`.
  virtual std::error_code rename_noreplace(const std::string& from, const std::string& to) = 0;
  virtual std::error_code unlink(const std::string& path) = 0;
  // Makes the directory's entries (creates, renames, unlinks) durable.
  virtual std::error_code fsync_dir(const std::string& dir) = 0;
  // Creates a directory (and its parents), durably (each new entry's parent is fsynced); no error
  // if it exists.
  virtual std::error_code mkdirs(const std::string& dir) = 0;
  virtual std::error_code list(const std::string& dir, std::vector<std::string>& names) = 0;
  virtual std::error_code read(const std::string& path, std::string& data) = 0;
  // Reads `size` octets at `offset`; fewer than asked (the file is shorter) is an error (EIO).
  virtual std::error_code read_range(const std::string& path, std::uint64_t offset, std::size_t size, std::string& data) = 0;
};

// The same without the final fsync of `dir`: for writing several files and then fsyncing
// their directory once. The file's contents are durable; its name is not yet.
std::error_code write_and_rename(Storage& s, const std::string& tmp_dir, const std::string& dir, const std::string& name,
                                 std::string_view data, bool replace = true);

// Writes `data` to `dir/name` durably: create a temporary in `tmp_dir`, write, fsync, close,
// rename into place, fsync `dir`. On failure the temporary is removed (best effort) and the
// target is either absent or its previous version. With `replace` false an existing target is
// never overwritten (EEXIST).
std::error_code write_durably(Storage& s, const std::string& tmp_dir, const std::string& dir, const std::string& name,
                              std::string_view data, bool replace = true);

class PosixStorage final : public Storage {
 public:
  explicit PosixStorage(std::string root);  // the directory everything lives under
  ~PosixStorage() override;
  std::error_code create(const std::string& path, Handle& out) override;
  std::error_code write(Handle h, std::string_view data) override;
  std::error_code fsync(Handle h) override;
  std::error_code close(Handle h) override;
  std::error_code rename(const std::string& from, const std::string& to) override;
  std::error_code rename_noreplace(const std::string& from, const std::string& to) override;
  std::error_code unlink(const std::string& path) override;
  std::error_code fsync_dir(const std::string& dir) override;
  std::error_code mkdirs(const std::string& dir) override;
  std::error_code list(const std::string& dir, std::vector<std::string>& names) override;
  std::error_code read(const std::string& path, std::string& data) override;
  std::error_code read_range(const std::string& path, std::uint64_t offset, std::size_t size, std::string& data) override;
  const std::string& root() const { return root_; }

 private:
  std::string full(const std::string& path) const;
  std::string root_;
};

// An in-memory file system with a crash model and fault injection, for tests.
//
// Durability model (stricter than ext4's data=ordered, so tests are pessimistic): a file's
// contents survive a crash only as of its last fsync; a directory entry (create, rename, unlink)
// survives only as of the directory's last fsync_dir. mkdirs is durable at once (PosixStorage
// fsyncs the parents of what it creates).
//
// Faults: every call to a mutating operation (create, write, fsync, close, rename, unlink,
// fsync_dir) counts as one operation, numbered from 0. `inject(n, kind)` makes operation n fail:
// with ENOSPC, EIO, a short write (half the data, then ENOSPC), or a crash — after which every
// operation fails with EIO until crash_and_restart() throws away what was not durable. A failed
// fsync loses the data it was to write, as on Linux (the error is reported once; a later fsync
// of the file succeeds, and those octets reach the disk as zeros).
class MemoryStorage final : public Storage {
 public:
  enum class Fault { none, enospc, eio, short_write, crash };

  MemoryStorage();
  ~MemoryStorage() override;

  void inject(std::size_t op, Fault kind);
  std::size_t operations() const;  // mutating operations so far
  bool crashed() const;
  void crash_and_restart();  // drop everything not durable; clear the fault plan

  std::error_code create(const std::string& path, Handle& out) override;
  std::error_code write(Handle h, std::string_view data) override;
  std::error_code fsync(Handle h) override;
  std::error_code close(Handle h) override;
  std::error_code rename(const std::string& from, const std::string& to) override;
  std::error_code rename_noreplace(const std::string& from, const std::string& to) override;
  std::error_code unlink(const std::string& path) override;
  std::error_code fsync_dir(const std::string& dir) override;
  std::error_code mkdirs(const std::string& dir) override;
  std::error_code list(const std::string& dir, std::vector<std::string>& names) override;
  std::error_code read(const std::string& path, std::string& data) override;
  std::error_code read_range(const std::string& path, std::uint64_t offset, std::size_t size, std::string& data) override;

 private:
  std::error_code move_entry(const std::string& from, const std::string& to, bool replace);
  struct State;
  std::unique_ptr<State> st_;
};

}  // namespace refsmtp::queue
