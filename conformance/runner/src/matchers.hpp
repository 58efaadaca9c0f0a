#pragma once
// The runner's own reply readers and matchers (internal): it shares nothing with the server core
// it may be judging.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/conform/script.hpp"

namespace refsmtp::conform::detail {

// "250", "2xx" against a reply code.
bool code_matches(const std::string& pattern, int code);
// "5.1.1", "5.x.x" against the start of a reply's text.
bool enhanced_matches(const std::string& pattern, const std::string& text);
// RFC 5321 §4.2: every line is the same three digits, then "-" (more follows) or SP/end. "" when
// the reply is well formed, else what is wrong with it.
std::string malformed(const std::vector<std::string>& lines);
// Whether a well-formed reply meets EXPECT's codes, enhanced status and regex (the regex already
// substituted); "" when it does, else why not.
std::string mismatch(const Expect& e, const std::string& regex, const std::vector<std::string>& lines);
// regex_search on at most the first 8 KiB of `text`; nothing (and `why`) when the pattern, with
// the profile's values substituted, does not compile.
std::optional<bool> search(const std::string& pattern, const std::string& text, std::string& why);
// "250 or 251 5.1.x /re/"
std::string describe(const Expect& e);
// Octets as a transcript shows them: \r \n \t \xHH for control and non-ASCII octets; at most
// `max` octets, then "... (N octets)".
std::string printable(std::string_view s, std::size_t max);
// The keywords of an EHLO reply (lines 2..n, first word, upper case), and one keyword's
// parameters ("AUTH" -> {"PLAIN", "LOGIN"}).
std::vector<std::string> ehlo_keywords(const std::vector<std::string>& lines);
std::vector<std::string> ehlo_params(const std::vector<std::string>& lines, const std::string& keyword);
// The fields of a message's header section named `name` (any case), each unfolded.
std::vector<std::string> header_fields(const std::string& message, const std::string& name);

}  // namespace refsmtp::conform::detail
