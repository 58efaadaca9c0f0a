#include "refsmtp/core/line_framer.hpp"

namespace refsmtp::core {

LineFramer::Frame LineFramer::next(std::string_view avail, std::size_t limit) {
  Frame f;
  if (avail.empty()) return f;
  const std::size_t first_lf = avail.find('\n');
  std::size_t lf = first_lf;
  if (!options_.lenient_lf) {
    while (lf != std::string_view::npos && (lf == 0 || avail[lf - 1] != '\r')) lf = avail.find('\n', lf + 1);
  }
  // While skipping a line, a final CR is kept: its LF may come in the next read, and only the
  // pair ends the line.
  const std::size_t keep_cr = avail.back() == '\r' ? 1 : 0;
  if (skipping_) {
    if (lf == std::string_view::npos) {
      f.consumed = avail.size() - keep_cr;
      return f;  // need_more: still inside the long line
    }
    f.consumed = lf + 1;
    f.kind = Kind::skipped;
    skipping_ = false;
    return f;
  }
  if (lf == std::string_view::npos) {
    if (avail.size() > limit) {
      f.consumed = avail.size() - keep_cr;
      f.kind = Kind::too_long;
      skipping_ = true;
    }
    return f;
  }
  f.consumed = lf + 1;
  if (lf + 1 > limit) {
    f.kind = Kind::too_long;
  } else if (first_lf != lf) {
    f.kind = Kind::bare_lf;
  } else {
    f.kind = Kind::line;
    f.line = avail.substr(0, lf);
    if (!f.line.empty() && f.line.back() == '\r') f.line.remove_suffix(1);
  }
  return f;
}

}  // namespace refsmtp::core
