#include "refsmtp/smtp/dot_codec.hpp"

#include <cstring>

namespace refsmtp::smtp {

void DataDecoder::reset() { *this = DataDecoder(opt_); }

void DataDecoder::emit(const char* p, std::size_t n, std::string& out) {
  if (n == 0) return;
  const std::uint64_t before = size_;
  size_ += n;
  if (opt_.max_size != 0 && size_ > opt_.max_size) {
    // Keep exactly the first max_size octets whatever the chunking, then only count.
    too_large_ = true;
    if (before < opt_.max_size) out.append(p, static_cast<std::size_t>(opt_.max_size - before));
    return;
  }
  out.append(p, n);
}

DataDecoder::Progress DataDecoder::decode(std::string_view in, std::string& out) {
  const char* const b = in.data();
  const std::size_t n = in.size();
  std::size_t i = 0;
  // Output is emitted lazily as runs of input: only a stuffing dot or the terminator interrupts a
  // run, so a typical chunk costs two memchr passes per line and one append.
  std::size_t run = 0;
  auto flush = [&](std::size_t end) {
    if (end > run) emit(b + run, end - run, out);
    run = end;
  };
  const auto too_long = [&] { return line_len_ + 2 > opt_.max_line; };

  while (i < n) {
    switch (state_) {
      case State::line_start:
        line_len_ = 0;
        if (b[i] == '.') {
          flush(i);
          run = i + 1;  // drop the dot: stuffing, or the start of the terminator
          ++i;
          state_ = State::dot_seen;
          continue;
        }
        state_ = State::in_line;
        [[fallthrough]];
      case State::in_line: {
        const void* lf = std::memchr(b + i, '\n', n - i);
        const std::size_t seg_end = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - b) : n;
        const void* cr = std::memchr(b + i, '\r', seg_end - i);
        if (cr) {
          const std::size_t c = static_cast<std::size_t>(static_cast<const char*>(cr) - b);
          line_len_ += c - i;
          i = c + 1;
          state_ = State::cr_seen;
          continue;
        }
        line_len_ += seg_end - i;
        if (!lf) {
          i = n;
          if (too_long()) line_too_long_ = true;
          continue;
        }
        bare_lf_ = true;  // LF not preceded by CR: data, never a line end (§2.3.8)
        line_len_ += 1;
        i = seg_end + 1;
        continue;
      }
      case State::cr_seen:
        if (b[i] == '\n') {
          if (too_long()) line_too_long_ = true;
          ++i;
          state_ = State::line_start;
        } else {
          bare_cr_ = true;
          line_len_ += 1;
          state_ = State::in_line;
        }
        continue;
      case State::dot_seen:
        if (b[i] == '\r') {
          ++i;
          state_ = State::dot_cr_seen;
        } else {
          state_ = State::in_line;  // "If the first character is a period and there are other
                                    // characters on the line, the first character is deleted."
        }
        continue;
      case State::dot_cr_seen:
        if (b[i] == '\n') {
          flush(pending_cr_ ? i : i - 1);  // the body excludes ".\r\n"
          pending_cr_ = false;
          state_ = State::line_start;
          return Progress{i + 1, true};
        }
        if (pending_cr_) {
          emit("\r", 1, out);
          pending_cr_ = false;
        }
        bare_cr_ = true;  // ".\r" then not LF: the CR is data
        line_len_ += 1;
        state_ = State::in_line;
        continue;
    }
  }
  if (state_ == State::dot_cr_seen && !pending_cr_ && n > 0) {
    flush(n - 1);  // hold back the CR: it is either data or part of the terminator
    pending_cr_ = true;
  } else if (state_ != State::dot_cr_seen) {
    flush(n);
  }
  return Progress{n, false};
}

std::string dot_stuff(std::string_view body) {
  std::string out;
  out.reserve(body.size() + body.size() / 64 + 5);
  bool line_start = true;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (line_start && c == '.') out += '.';
    out += c;
    // A new line starts after LF, and after a CR not followed by LF: a receiver that ends lines
    // at bare CR or LF then still never sees an unstuffed dot at a line start.
    line_start = c == '\n' || (c == '\r' && (i + 1 == body.size() || body[i + 1] != '\n'));
  }
  if (!body.empty() && !body.ends_with("\r\n")) out += "\r\n";
  out += ".\r\n";
  return out;
}

}  // namespace refsmtp::smtp
