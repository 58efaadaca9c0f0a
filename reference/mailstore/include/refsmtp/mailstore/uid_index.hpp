#pragma once
// The UID index of one mailbox, the part of the mail store that POP3 (UIDL, RFC 1939 §7) and IMAP
// (UID, UIDVALIDITY, UIDNEXT; RFC 9051 §2.3.1.1) stand on: which Maildir message has which UID.
// Sans-IO: the text form and the rules, tested alone; reading and writing it crash-safely (a
// temporary file, fsync, rename, under the mailbox's writer lock) is the store's job.
//
// The rules (RFC 9051 §2.3.1.1): UIDs are nonzero, strictly ascending in arrival order and never
// reused in a mailbox with the same UIDVALIDITY; next_uid ("UIDNEXT") never goes backwards; a
// message keeps its UID for as long as it exists. When the 32-bit UID space is used up, a new
// UIDVALIDITY must be chosen and every message numbered again: update() says so, and the store
// does it.
//
// Text form, one record per line, LF line ends:
//   refsmtp-uidlist 1 UIDVALIDITY NEXTUID
//   UID SIZE INTERNALDATE KEY        (ascending UID; SIZE counted with CRLF line ends,
//   ...                               INTERNALDATE in ms since the epoch, KEY the Maildir base name)
//   end COUNT HASH                   (entries, and FNV-1a 64 of everything before this line)
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/core/result.hpp"

namespace refsmtp::mailstore {

struct UidEntry {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;         // octets as a client sees them (CRLF line ends): RFC822.SIZE, LIST
  std::int64_t internal_ms = 0;   // INTERNALDATE (RFC 9051 §2.3.3): when it was delivered
  std::string key;                // the Maildir file name up to its ":2," info
  bool operator==(const UidEntry&) const = default;
};

struct UidList {
  std::uint32_t uidvalidity = 0;  // nonzero
  std::uint32_t next_uid = 1;     // the UID the next arrival gets
  std::vector<UidEntry> entries;  // ascending UID
  bool operator==(const UidList&) const = default;
};

struct UidListError {
  std::size_t line = 0;  // 1-based; 0 for the whole file
  std::string what;
};

// A Maildir base name the index can hold: printable ASCII, no space, '/' or ':', not empty, not
// starting with '.', at most 255 octets.
bool valid_key(std::string_view key);

std::string serialize(const UidList& list);
// Strict: any deviation from the form or the rules is an error naming its line, so a damaged
// index is noticed (and rebuilt with a new UIDVALIDITY) instead of trusted.
core::Result<UidList, UidListError> parse_uidlist(std::string_view text);

struct Arrival {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t internal_ms = 0;
};

enum class UpdateError {
  invalid_key,     // an arrival's key cannot be held (valid_key)
  duplicate_key,   // an arrival is already indexed, or named twice
  uids_exhausted,  // no UID left under this UIDVALIDITY: renumber with a new one
};

// The index after a scan of the mailbox: entries whose key is not in `present` are gone
// (expunged); each arrival, in order, gets next_uid, which then moves on. Nothing else changes.
core::Result<UidList, UpdateError> update(const UidList& list, const std::set<std::string>& present,
                                          const std::vector<Arrival>& arrivals);

}  // namespace refsmtp::mailstore
