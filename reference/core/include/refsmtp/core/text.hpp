#pragma once
// Small text helpers shared by the parsers of configuration and script files (recipient
// tables, credentials, conformance scripts) and by the code that compares domains.
#include <string>
#include <string_view>
#include <vector>

namespace refsmtp::core {

// ASCII letters to lower case, every other octet unchanged: how domains (RFC 5321 §2.4) and the
// keys of local tables compare.
std::string ascii_lower(std::string_view s);

// Without leading and trailing spaces and tabs (and a trailing CR).
std::string_view trim(std::string_view s);

// Takes the next line off the front of `text` and returns it without its LF or CRLF; the last
// line may lack a line end. Call while !text.empty().
std::string_view next_line(std::string_view& text);

// The candidate most like `word` (fewest single-character edits, the first on a tie), or "" when
// none is within `max_edits`: for "did you mean --listen?" after a typo.
std::string nearest(std::string_view word, const std::vector<std::string>& candidates, std::size_t max_edits = 2);

}  // namespace refsmtp::core
