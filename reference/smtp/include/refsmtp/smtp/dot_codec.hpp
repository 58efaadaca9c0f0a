#pragma once
// DATA transparency (RFC 5321 §4.5.2) and end-of-data detection (§4.1.1.4).
//
// The decoder is strict about framing: the message ends only at <CRLF>.<CRLF>, never at a bare
// LF or CR variant (SMTP smuggling, CVE-2023-51764..51766). Bare CR, bare LF, an overlong line and
// an oversized body are *reported*, not acted on: the decoder always reads to the real end of the
// data so the session can refuse the whole message with one reply (chasquid's dotreader does the
// same). The session decides, by its named leniency flags, whether a report refuses the message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace refsmtp::smtp {

class DataDecoder {
 public:
  struct Options {
    std::size_t max_line = 1000;  // §4.5.3.1.6, including CRLF and excluding the stuffing dot
    std::uint64_t max_size = 0;   // body octets to keep; 0 = no limit. Past it, octets are counted
                                  // but no longer appended (RFC 1870 §6.3: read to the end, 552)
  };
  struct Progress {
    std::size_t consumed = 0;  // octets of input used, including the terminator when done
    bool done = false;         // the terminating <CRLF>.<CRLF> was read
  };

  DataDecoder() = default;
  explicit DataDecoder(Options opt) : opt_(opt) {}

  // Appends the unstuffed message body (lines with their CRLF, without the final ".\r\n") to
  // `out`. Call with any chunking; stops right after the terminator.
  Progress decode(std::string_view in, std::string& out);
  void reset();

  bool bare_lf() const { return bare_lf_; }
  bool bare_cr() const { return bare_cr_; }
  bool line_too_long() const { return line_too_long_; }
  bool too_large() const { return too_large_; }
  std::uint64_t size() const { return size_; }  // body octets seen, kept or not

 private:
  enum class State : unsigned char { line_start, in_line, cr_seen, dot_seen, dot_cr_seen };
  void emit(const char* p, std::size_t n, std::string& out);

  Options opt_{};
  State state_ = State::line_start;
  bool pending_cr_ = false;  // the CR of ".\r" arrived at the end of the previous chunk
  std::size_t line_len_ = 0;
  std::uint64_t size_ = 0;
  bool bare_lf_ = false, bare_cr_ = false, line_too_long_ = false, too_large_ = false;
};

// Client side: a body ready to send after the 354 reply — every line starting with "." gets one
// more, a final CRLF is added when the body does not end in one, then ".\r\n". Lines are taken to
// start after every LF, so a body with bare LFs is over-stuffed rather than able to end early at a
// lenient receiver. decode(dot_stuff(b)) == b for every body made of CRLF-terminated lines.
std::string dot_stuff(std::string_view body);

}  // namespace refsmtp::smtp
