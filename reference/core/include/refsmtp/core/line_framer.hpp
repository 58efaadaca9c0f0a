#pragma once
// Line framing for the text protocols (SMTP commands and SASL responses, and the POP3 and IMAP
// command lines to come): where the next line ends in the bytes received so far. Strict by
// default: only CRLF ends a line (RFC 5321 §2.3.8; RFC 1939 §3; RFC 9051 §2.2), so a bare LF is
// part of a line and "NOOP<LF>NOOP<CRLF>" is one bad line, never two commands. A line longer
// than the limit is skipped to its real end and reported once. The twin of the DATA decoder.
#include <cstddef>
#include <string_view>

namespace refsmtp::core {

class LineFramer {
 public:
  struct Options {
    // Take a bare LF as a line end. Risk: masks broken clients; a receiver that frames
    // differently from its peers can be made to see different commands.
    bool lenient_lf = false;
  };
  enum class Kind {
    need_more,  // no complete line yet: call again with more bytes
    line,       // `line` is the next line, without its CRLF
    too_long,   // a line over the limit: it is being skipped, one report per line
    bare_lf,    // a line with a bare LF before its CRLF: refused whole
    skipped,    // the rest of an overlong line went by: nothing to report
  };
  struct Frame {
    Kind kind = Kind::need_more;
    std::size_t consumed = 0;  // octets of `avail` taken (a trailing CR is kept for its LF)
    std::string_view line;     // with Kind::line: a view into `avail`
  };

  LineFramer() = default;
  explicit LineFramer(Options options) : options_(options) {}

  // Looks at the unread input `avail` (non-empty). `limit` is the longest line allowed,
  // CRLF included; the caller may choose it from how the line starts (AUTH and MAIL lines
  // may be longer, RFC 4954 §4, RFC 5321 §4.5.3.1.4).
  Frame next(std::string_view avail, std::size_t limit);

  bool skipping() const { return skipping_; }

 private:
  Options options_;
  bool skipping_ = false;  // inside an overlong line
};

}  // namespace refsmtp::core
