#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/replies.hpp"

#include <charconv>

#include "refsmtp/core/ascii.hpp"

namespace refsmtp::smtp {

using core::is_digit;

std::string EnhancedStatus::to_string() const {
  std::string out;
  append_to(out);
  return out;
}

void EnhancedStatus::append_to(std::string& out) const {
  char buf[32];
  char* p = buf;
  char* end = buf + sizeof buf;
  p = std::to_chars(p, end, klass).ptr;
  *p++ = '.';
  p = std::to_chars(p, end, subject).ptr;
  *p++ = '.';
  p = std::to_chars(p, end, detail).ptr;
  out.append(buf, static_cast<std::size_t>(p - buf));
}

std::optional<EnhancedStatus> EnhancedStatus::parse(std::string_view s) {
  // status-code = class "." subject "." detail; class = "2"/"4"/"5"; subject, detail = 1*3digit
  int parts[3] = {0, 0, 0};
  std::size_t i = 0;
  for (int k = 0; k < 3; ++k) {
    if (k > 0) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
    const std::size_t start = i;
    while (i < s.size() && is_digit(static_cast<unsigned char>(s[i])) && i - start < 3) ++i;
    if (i == start) return std::nullopt;
    std::from_chars(s.data() + start, s.data() + i, parts[k]);
  }
  if (i != s.size()) return std::nullopt;
  if (parts[0] != 2 && parts[0] != 4 && parts[0] != 5) return std::nullopt;
  return EnhancedStatus{parts[0], parts[1], parts[2]};
}

Reply make_reply(int code, std::optional<EnhancedStatus> enhanced, std::string text) {
  return Reply{code, enhanced, {std::move(text)}};
}

Reply make_reply(int code, int klass, int subject, int detail, std::string text) {
  return Reply{code, EnhancedStatus{klass, subject, detail}, {std::move(text)}};
}

void append_reply_line(std::string& out, int code, bool last, const EnhancedStatus* status, std::string_view text) {
  char head[4] = {static_cast<char>('0' + code / 100 % 10), static_cast<char>('0' + code / 10 % 10),
                  static_cast<char>('0' + code % 10), last ? ' ' : '-'};
  out.append(head, 4);
  if (status) {
    status->append_to(out);
    out += ' ';
  }
  const std::size_t start = out.size();
  out.append(text);
  for (std::size_t i = start; i < out.size(); ++i) {
    const auto u = static_cast<unsigned char>(out[i]);
    if (u < 32 || u == 127) out[i] = '?';
  }
  out += "\r\n";
}

void Reply::format_to(std::string& out, bool enhanced_codes) const {
  const EnhancedStatus* status = enhanced_codes && enhanced ? &*enhanced : nullptr;
  if (lines.empty()) {
    append_reply_line(out, code, true, status, {});
    return;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) append_reply_line(out, code, i + 1 == lines.size(), status, lines[i]);
}

std::string Reply::format() const {
  std::string out;
  format_to(out);
  return out;
}

std::string Reply::text() const {
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    out += lines[i];
  }
  return out;
}

void ReplyReader::feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

void ReplyReader::reset_reply() {
  lines_.clear();
  code_ = 0;
  bare_lf_ = false;
  inconsistent_ = false;
}

std::optional<ReplyReader::Item> ReplyReader::next() {
  while (true) {
    const std::size_t lf = buf_.find('\n', pos_);
    if (discarding_) {
      if (lf == std::string::npos) {
        pos_ = buf_.size();
        return std::nullopt;
      }
      pos_ = lf + 1;
      discarding_ = false;
      continue;
    }
    if (lf == std::string::npos) {
      if (buf_.size() - pos_ > opt_.max_line + 1) {  // + 1: the CR of a line at the limit
        Item item;
        item.error = ErrorKind::line_too_long;
        item.raw = buf_.substr(pos_, 80);
        pos_ = buf_.size();
        discarding_ = true;
        reset_reply();
        return item;
      }
      return std::nullopt;
    }
    std::string_view line(buf_.data() + pos_, lf - pos_);
    pos_ = lf + 1;
    bool bare_lf = true;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
      bare_lf = false;
    }
    if (line.size() > opt_.max_line) {
      Item item;
      item.error = ErrorKind::line_too_long;
      item.raw = std::string(line.substr(0, 80));
      reset_reply();
      return item;
    }
    // reply-line = Reply-code [ SP / "-" textstring ] (§4.2; the text is optional in practice)
    const bool code_ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' &&
                         is_digit(static_cast<unsigned char>(line[1])) &&
                         is_digit(static_cast<unsigned char>(line[2])) &&
                         (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!code_ok) {
      Item item;
      item.error = ErrorKind::malformed_line;
      item.raw = std::string(line.substr(0, 80));
      reset_reply();
      return item;
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const bool more = line.size() > 3 && line[3] == '-';
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    if (lines_.empty()) {
      code_ = code;
    } else if (code != code_) {
      inconsistent_ = true;
    }
    bare_lf_ = bare_lf_ || bare_lf;
    lines_.emplace_back(text);
    if (more && lines_.size() >= opt_.max_lines) {
      Item item;
      item.error = ErrorKind::too_many_lines;
      item.raw = std::string(line.substr(0, 80));
      reset_reply();
      return item;
    }
    if (more) continue;

    Item item;
    Reply reply;
    reply.code = code_;
    // An enhanced status code leads the text when the server uses RFC 2034; take it from the
    // first line if its class agrees with the reply code, and strip it from every line.
    const std::string& first = lines_.front();
    const std::size_t sp = first.find(' ');
    auto status = EnhancedStatus::parse(std::string_view(first).substr(0, sp));
    if (status && status->klass == code_ / 100) {
      reply.enhanced = status;
      const std::string prefix = first.substr(0, sp);
      for (auto& l : lines_) {
        if (l.starts_with(prefix)) {
          l.erase(0, prefix.size());
          if (!l.empty() && l[0] == ' ') l.erase(0, 1);
        }
      }
    }
    reply.lines = std::move(lines_);
    item.reply = std::move(reply);
    item.bare_lf = bare_lf_;
    item.inconsistent_codes = inconsistent_;
    reset_reply();
    return item;
  }
}

}  // namespace refsmtp::smtp

namespace refsmtp::smtp {

std::string Reply::one_line() const {
  std::string out = std::to_string(code);
  if (enhanced) out += " " + enhanced->to_string();
  for (const auto& line : lines) {
    out += ' ';
    for (char c : line) out += (static_cast<unsigned char>(c) < 32 || c == 127) ? ' ' : c;
  }
  return out;
}

Reply NamedReply::to_reply(std::string_view detail) const {
  std::string t(text);
  if (!detail.empty()) {
    t += ": ";
    t += detail;
  }
  return Reply{code, has_status() ? std::optional<EnhancedStatus>(status) : std::nullopt, {std::move(t)}};
}

Reply NamedReply::with_host(std::string_view hostname) const {
  Reply r = to_reply();
  r.lines.front() = std::string(hostname) + " " + r.lines.front();
  return r;
}

}  // namespace refsmtp::smtp
