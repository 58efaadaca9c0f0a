#pragma once
// SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463), their wire
// format, and a tolerant incremental reader for replies from untrusted servers.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace refsmtp::smtp {

struct EnhancedStatus {
  int klass = 2;    // 2, 4 or 5 (RFC 3463 §3.1)
  int subject = 0;  // 0..999
  int detail = 0;   // 0..999
  bool operator==(const EnhancedStatus&) const = default;
  std::string to_string() const;
  void append_to(std::string& out) const;  // without a temporary string
  // Parses "c.sss.ddd" exactly (RFC 3463 §2: no leading zeros rule is not enforced on input).
  static std::optional<EnhancedStatus> parse(std::string_view s);
};

struct Reply {
  int code = 250;
  std::optional<EnhancedStatus> enhanced;
  std::vector<std::string> lines;  // text only: no code, no enhanced status, no CRLF

  bool operator==(const Reply&) const = default;
  int klass() const { return code / 100; }  // 2 positive, 3 intermediate, 4 transient, 5 permanent
  bool positive() const { return code >= 200 && code < 400; }
  // "250-first\r\n250 last\r\n"; the enhanced status starts every line (RFC 2034 §4). Control
  // characters in the text are replaced so text from a peer can never split a reply.
  std::string format() const;
  // Appends the wire form to `out`; without `enhanced_codes` the status is left out (RFC 2034:
  // only when the extension is offered).
  void format_to(std::string& out, bool enhanced_codes = true) const;
  std::string text() const;  // lines joined with "\n", for logs and error messages
  // "550 5.1.1 text more text": code, status and every line on one line, control characters
  // as spaces -- how the queue stores it and the DSN and the log quote it.
  std::string one_line() const;
};

// Appends one reply line ("250-..." or "250 ...", CRLF-terminated) to `out`, neutralising control
// characters in `text`. The building block of Reply::format_to, and of replies that never need a
// Reply object (the session's own fixed replies, on the per-command path).
void append_reply_line(std::string& out, int code, bool last, const EnhancedStatus* status, std::string_view text);

Reply make_reply(int code, std::optional<EnhancedStatus> enhanced, std::string text);
Reply make_reply(int code, int klass, int subject, int detail, std::string text);

// Reads replies from a byte stream in any chunking. Tolerant of what real servers send — bare LF
// line ends, a code with no text ("250"), "250-" followed by nothing, codes that change inside a
// multi-line reply (flagged) — and bounded on what an attacker could send: line length and lines
// per reply are limited and reported as errors, after which the reader resynchronises at the
// next line.
class ReplyReader {
 public:
  enum class ErrorKind {
    malformed_line,   // not three digits followed by SP, "-" or end of line
    line_too_long,    // longer than max_line octets
    too_many_lines,   // a multi-line reply longer than max_lines
  };
  struct Item {
    std::optional<Reply> reply;              // set for a complete reply
    std::optional<ErrorKind> error;          // set for a framing error
    std::string raw;                         // the offending line (truncated) on error
    bool bare_lf = false;                    // some line ended in LF without CR
    bool inconsistent_codes = false;         // continuation lines carried another code
  };
  struct Options {
    std::size_t max_line = 4096;   // RFC 5321 §4.5.3.1.5 says 512; be generous, but bounded
    std::size_t max_lines = 1000;
  };

  ReplyReader() = default;
  explicit ReplyReader(Options opt) : opt_(opt) {}

  void feed(std::string_view bytes);
  // Next complete reply or error, or nothing until more bytes arrive.
  std::optional<Item> next();
  std::size_t buffered() const { return buf_.size() - pos_; }
  bool mid_reply() const { return !lines_.empty(); }

 private:
  Options opt_{};
  std::string buf_;
  std::size_t pos_ = 0;
  bool discarding_ = false;  // skipping the rest of an overlong line
  // The multi-line reply being assembled.
  std::vector<std::string> lines_;
  int code_ = 0;
  bool bare_lf_ = false;
  bool inconsistent_ = false;
  void reset_reply();
};

}  // namespace refsmtp::smtp
