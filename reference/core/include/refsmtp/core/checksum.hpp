#pragma once
// The checksum the project's own record formats end with (the spool's journal and envelopes,
// the mail store's UID index): FNV-1a 64, written as exactly 16 lower-case hex digits. It finds
// torn and damaged files; it is no defence against someone who means harm. (The envelope record
// has always written its digits in upper case: files on disk keep their spelling.)
#include <cstdint>
#include <string>
#include <string_view>

namespace refsmtp::core {

enum class HexCase { lower, upper };

std::uint64_t fnv1a64(std::string_view data);
std::string hex64(std::uint64_t v, HexCase c = HexCase::lower);  // exactly 16 digits
// Exactly 16 digits of that case, nothing else.
bool parse_hex64(std::string_view s, std::uint64_t& out, HexCase c = HexCase::lower);

}  // namespace refsmtp::core
