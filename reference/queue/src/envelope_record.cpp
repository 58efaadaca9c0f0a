#include "refsmtp/queue/envelope_record.hpp"

#include <charconv>

#include "refsmtp/core/checksum.hpp"
#include <cstdio>

namespace refsmtp::queue {

namespace {

using core::fnv1a64;
// The envelope record writes its hashes in upper case, as it always has.
std::string hex64(std::uint64_t v) { return core::hex64(v, core::HexCase::upper); }
bool parse_hex64(std::string_view s, std::uint64_t& out) { return core::parse_hex64(s, out, core::HexCase::upper); }

constexpr std::string_view kMagic = "REFSMTP-ENVELOPE 1";
constexpr char kHex[] = "0123456789ABCDEF";

// "<" and ">" are escaped so that no escaped value can be "<>", the null path's marker.
bool needs_escape(unsigned char c) {
  return c <= 0x20 || c >= 0x7F || c == '%' || c == '=' || c == '<' || c == '>';
}

std::string_view kind_name(MessageKind k) {
  switch (k) {
    case MessageKind::normal: return "normal";
    case MessageKind::bounce: return "bounce";
    case MessageKind::notice: return "notice";
  }
  return "normal";
}
std::string_view state_name(RecipientState s) {
  switch (s) {
    case RecipientState::pending: return "pending";
    case RecipientState::delivered: return "delivered";
    case RecipientState::failed: return "failed";
  }
  return "pending";
}
std::string_view body_name(smtp::BodyType b) {
  switch (b) {
    case smtp::BodyType::unspecified: return "-";
    case smtp::BodyType::seven_bit: return "7BIT";
    case smtp::BodyType::eight_bit_mime: return "8BITMIME";
    case smtp::BodyType::binary_mime: return "BINARYMIME";
  }
  return "-";
}

// "<>" for the null path; else "local domain literal(0|1)", each escaped.
std::string path_fields(const smtp::Path& p) {
  if (p.is_null()) return "<>";
  return escape(p.mailbox->local_part) + " " + escape(p.mailbox->domain) + " " + (p.mailbox->domain_is_literal ? "1" : "0");
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  while (true) {
    const std::size_t sp = line.find(' ');
    out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  return out;
}

template <class T>
bool parse_uint(std::string_view s, T& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;  // canonical decimal
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_int(std::string_view s, std::int64_t& out) {
  if (s.empty() || s == "-0" || (s.size() > 1 && s[0] == '0') || (s.size() > 2 && s[0] == '-' && s[1] == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_path(const std::vector<std::string_view>& f, std::size_t at, smtp::Path& out, std::size_t& used) {
  if (at < f.size() && f[at] == "<>") {
    out = smtp::Path{};
    used = 1;
    return true;
  }
  if (at + 3 > f.size()) return false;
  auto local = unescape(f[at]);
  auto domain = unescape(f[at + 1]);
  if (!local || !domain || (f[at + 2] != "0" && f[at + 2] != "1")) return false;
  out = smtp::Path{};
  out.mailbox = smtp::Mailbox{*local, *domain, f[at + 2] == "1"};
  used = 3;
  return true;
}

}  // namespace

std::string_view describe(RecordError e) {
  switch (e) {
    case RecordError::bad_header: return "not an envelope file (bad first line)";
    case RecordError::bad_line: return "unexpected line";
    case RecordError::bad_value: return "malformed value";
    case RecordError::bad_checksum: return "checksum mismatch";
    case RecordError::truncated: return "truncated (no end line)";
    case RecordError::trailing_data: return "data after the end line";
  }
  return "error";
}

std::string escape(std::string_view raw) {
  if (raw.empty()) return "=";
  std::string out;
  out.reserve(raw.size());
  for (unsigned char c : raw) {
    if (needs_escape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::string> unescape(std::string_view text) {
  if (text == "=") return std::string();
  if (text.empty()) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const char* hi = std::char_traits<char>::find(kHex, 16, text[i + 1]);
      const char* lo = std::char_traits<char>::find(kHex, 16, text[i + 2]);
      if (!hi || !lo) return std::nullopt;
      const auto v = static_cast<unsigned char>((hi - kHex) << 4 | (lo - kHex));
      if (!needs_escape(v)) return std::nullopt;  // canonical: only what must be escaped is
      out += static_cast<char>(v);
      i += 2;
    } else if (needs_escape(c)) {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string serialize(const StoredEnvelope& e) {
  std::string s;
  s += kMagic;
  s += "\nid " + escape(e.id);
  s += "\nkind " + std::string(kind_name(e.kind));
  s += "\narrival " + std::to_string(e.arrival_ms);
  s += "\nclient " + escape(e.helo) + " " + escape(e.client_address);
  s += "\nfrom " + path_fields(e.reverse_path);
  s += "\nsize " + (e.size ? std::to_string(*e.size) : std::string("-"));
  s += "\nbody " + std::string(body_name(e.body_type));
  s += "\nsmtputf8 " + std::string(e.smtputf8 ? "1" : "0");
  s += "\nattempts " + std::to_string(e.attempts);
  s += "\nnext " + std::to_string(e.next_attempt_ms);
  s += "\ndelay-notified " + std::string(e.delay_notified ? "1" : "0");
  s += "\ndata " + std::to_string(e.body_size) + " " + hex64(e.body_hash);
  if (e.auth) s += "\nauth " + escape(*e.auth);  // optional: records without it stay valid
  if (e.held) s += "\nheld 1";                     // optional, likewise
  for (const auto& r : e.recipients) {
    s += "\nrcpt " + std::string(state_name(r.state)) + " " + path_fields(r.path) + " " + escape(r.last_reply);
  }
  s += "\n";
  s += "end " + std::to_string(s.size()) + " " + hex64(fnv1a64(s)) + "\n";
  return s;
}

RecordResult parse_envelope(std::string_view text) {
  RecordResult res;
  auto fail = [&](RecordError err, std::size_t line) {
    res.envelope.reset();
    res.error = err;
    res.line = line;
    return res;
  };
  // Split into lines; every line ends in LF.
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t lf = text.find('\n', pos);
    if (lf == std::string_view::npos) return fail(RecordError::truncated, lines.size() + 1);
    starts.push_back(pos);
    lines.push_back(text.substr(pos, lf - pos));
    pos = lf + 1;
  }
  if (lines.empty() || lines[0] != kMagic) return fail(RecordError::bad_header, 1);
  // The end line is the first line starting "end ".
  std::size_t end_line = lines.size();
  for (std::size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].starts_with("end ")) {
      end_line = i;
      break;
    }
  }
  if (end_line == lines.size()) return fail(RecordError::truncated, lines.size());
  if (end_line + 1 != lines.size()) return fail(RecordError::trailing_data, end_line + 2);
  {
    const auto f = split_spaces(lines[end_line]);
    std::uint64_t len = 0, hash = 0;
    if (f.size() != 3 || !parse_uint(f[1], len) || !parse_hex64(f[2], hash)) return fail(RecordError::bad_value, end_line + 1);
    const std::string_view covered = text.substr(0, starts[end_line]);
    if (len != covered.size() || hash != fnv1a64(covered)) return fail(RecordError::bad_checksum, end_line + 1);
  }

  StoredEnvelope e;
  static constexpr std::string_view keys[] = {"id", "kind", "arrival", "client", "from", "size", "body",
                                              "smtputf8", "attempts", "next", "delay-notified", "data"};
  constexpr std::size_t nkeys = std::size(keys);
  if (end_line < 1 + nkeys) return fail(RecordError::bad_line, end_line + 1);
  for (std::size_t k = 0; k < nkeys; ++k) {
    const std::size_t ln = 1 + k;
    const auto f = split_spaces(lines[ln]);
    if (f[0] != keys[k]) return fail(RecordError::bad_line, ln + 1);
    auto bad = [&] { return fail(RecordError::bad_value, ln + 1); };
    const std::string_view key = keys[k];
    if (key == "id") {
      if (f.size() != 2) return bad();
      auto v = unescape(f[1]);
      if (!v) return bad();
      e.id = *v;
    } else if (key == "kind") {
      if (f.size() != 2) return bad();
      if (f[1] == "normal") e.kind = MessageKind::normal;
      else if (f[1] == "bounce") e.kind = MessageKind::bounce;
      else if (f[1] == "notice") e.kind = MessageKind::notice;
      else return bad();
    } else if (key == "arrival") {
      if (f.size() != 2 || !parse_int(f[1], e.arrival_ms)) return bad();
    } else if (key == "client") {
      if (f.size() != 3) return bad();
      auto h = unescape(f[1]);
      auto a = unescape(f[2]);
      if (!h || !a) return bad();
      e.helo = *h;
      e.client_address = *a;
    } else if (key == "from") {
      std::size_t used = 0;
      if (!parse_path(f, 1, e.reverse_path, used) || 1 + used != f.size()) return bad();
    } else if (key == "size") {
      if (f.size() != 2) return bad();
      if (f[1] != "-") {
        std::uint64_t v = 0;
        if (!parse_uint(f[1], v)) return bad();
        e.size = v;
      }
    } else if (key == "body") {
      if (f.size() != 2) return bad();
      if (f[1] == "-") e.body_type = smtp::BodyType::unspecified;
      else if (f[1] == "7BIT") e.body_type = smtp::BodyType::seven_bit;
      else if (f[1] == "8BITMIME") e.body_type = smtp::BodyType::eight_bit_mime;
      else if (f[1] == "BINARYMIME") e.body_type = smtp::BodyType::binary_mime;
      else return bad();
    } else if (key == "smtputf8" || key == "delay-notified") {
      if (f.size() != 2 || (f[1] != "0" && f[1] != "1")) return bad();
      (key == "smtputf8" ? e.smtputf8 : e.delay_notified) = f[1] == "1";
    } else if (key == "attempts") {
      if (f.size() != 2 || !parse_uint(f[1], e.attempts)) return bad();
    } else if (key == "next") {
      if (f.size() != 2 || !parse_int(f[1], e.next_attempt_ms)) return bad();
    } else if (key == "data") {
      if (f.size() != 3 || !parse_uint(f[1], e.body_size) || !parse_hex64(f[2], e.body_hash)) return bad();
    }
  }
  std::size_t first_rcpt = 1 + nkeys;
  if (first_rcpt < end_line && lines[first_rcpt].starts_with("auth ")) {
    const auto f = split_spaces(lines[first_rcpt]);
    auto v = f.size() == 2 ? unescape(f[1]) : std::nullopt;
    if (!v) return fail(RecordError::bad_value, first_rcpt + 1);
    e.auth = *v;
    ++first_rcpt;
  }
  if (first_rcpt < end_line && lines[first_rcpt].starts_with("held ")) {
    if (lines[first_rcpt] != "held 1") return fail(RecordError::bad_value, first_rcpt + 1);
    e.held = true;
    ++first_rcpt;
  }
  for (std::size_t ln = first_rcpt; ln < end_line; ++ln) {
    const auto f = split_spaces(lines[ln]);
    if (f[0] != "rcpt") return fail(RecordError::bad_line, ln + 1);
    QueuedRecipient r;
    if (f.size() < 3) return fail(RecordError::bad_value, ln + 1);
    if (f[1] == "pending") r.state = RecipientState::pending;
    else if (f[1] == "delivered") r.state = RecipientState::delivered;
    else if (f[1] == "failed") r.state = RecipientState::failed;
    else return fail(RecordError::bad_value, ln + 1);
    std::size_t used = 0;
    if (!parse_path(f, 2, r.path, used) || r.path.is_null() || 2 + used + 1 != f.size()) {
      return fail(RecordError::bad_value, ln + 1);
    }
    auto reply = unescape(f.back());
    if (!reply) return fail(RecordError::bad_value, ln + 1);
    r.last_reply = *reply;
    e.recipients.push_back(std::move(r));
  }
  res.envelope = std::move(e);
  return res;
}

}  // namespace refsmtp::queue
