#pragma once
// Local delivery into Maildir and mbox files.
//
// Both take the stored message (CRLF lines, Received: already at its top) and add Return-Path:
// (RFC 5321 §4.4), and both store LF line ends, the Unix convention mail readers expect.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "refsmtp/smtp/address.hpp"
#include "refsmtp/queue/storage.hpp"

namespace refsmtp::delivery {

// The message with every CRLF turned into LF (a lone CR or LF is kept as it is).
std::string to_lf(std::string_view message);

// "Return-Path: <sender>" + message, with CRLF turned into LF.
std::string local_copy(const smtp::Path& sender, std::string_view message);

struct MaildirTarget {
  std::string dir;       // the Maildir, relative to the storage root (tmp/ new/ cur/ made on demand)
  std::string hostname;  // for the unique name
  std::int64_t now_ms = 0;
  std::uint64_t sequence = 0;  // distinct per delivery within a process
  long pid = 0;
  // When set (e.g. queue id + recipient), the name is derived from it alone, and a message of
  // that name already in new/ counts as delivered: a delivery repeated after a crash does not
  // leave a second copy (exactly once into the mailbox).
  std::string idempotency_key;
  // False: new/ is not fsynced here. The caller fsyncs DIR/new (once for many deliveries into
  // it) before it counts the message as delivered; until then a crash may undo the delivery.
  bool sync_dir = true;
};

// Maildir delivery: write tmp/NAME, fsync, rename to new/NAME, fsync new/ (the Maildir protocol,
// made durable; see sync_dir). NAME is "SECONDS.MMICROSPPIDQSEQ.HOST", or "SECONDS.KKEY.HOST" with an
// idempotency key, with "/" and ":" in HOST encoded as \057 and \072. Returns the file name
// under new/. (The new/ entry is noticed by readers only once renamed: never a partial file.)
std::error_code deliver_maildir(queue::Storage& storage, const MaildirTarget& target, std::string_view message_lf,
                                std::string& name);

// mbox delivery (RFC 4155, mboxrd quoting): "From SENDER DATE" line, lines matching ^>*From_
// get one more ">", a blank line after the message. The file is locked with a dot-lock and an
// fcntl lock (both bounded waits), appended, and fsynced; if anything fails, it is truncated
// back to its old size. A symlink, a hard-linked file or a non-regular file is refused.
struct MboxOptions {
  int attempts = 50;                     // to take each lock (dot-lock, then fcntl), then EAGAIN
  std::chrono::milliseconds wait{100};   // between attempts
  std::chrono::seconds stale{600};       // a dot-lock older than this is taken over
  bool sync = true;                      // fsync the append (test-mode capture promises no durability)
};
std::error_code deliver_mbox(const std::string& path, const smtp::Path& sender, std::int64_t now_ms,
                             std::string_view message_lf, const MboxOptions& options = {});

// Appends one entry to an open mbox under an fcntl write lock (bounded waits as in `options`),
// fsynced when options.sync; a failed append is cut back off, so the file still ends on a whole
// entry. `offset` is where the entry starts; `torn` says even the cut failed (the file then ends
// in part of an entry).
std::error_code append_mbox(int fd, std::string_view entry, const MboxOptions& options, std::uint64_t& offset, bool& torn);

// The mboxrd-quoted form of a message, with its "From " line and the trailing blank line.
std::string mbox_entry(const smtp::Path& sender, std::int64_t now_ms, std::string_view message_lf);

}  // namespace refsmtp::delivery
