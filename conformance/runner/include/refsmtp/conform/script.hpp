#pragma once
// Conformance cases as data: one transcript per file, in the C:/S: style RFCs use.
//
//   # case: mail-before-helo
//   # rfc: RFC 5321 §4.1.4
//   # level: MUST
//   # needs: PIPELINING            (EHLO keywords the case needs; skipped when not advertised)
//   # title: MAIL before EHLO/HELO is refused with 503
//   S: 220
//   C: MAIL FROM:<${sender}>
//   S: 503
//
// Steps:
//   C: TEXT          send TEXT + CRLF. Consecutive C: lines go out in one write (pipelining).
//   RAW: BYTES       send BYTES as is (escapes \r \n \t \0 \\ \xHH), no CRLF added
//   S: EXPECT        read one reply and check it. EXPECT is one of
//                      250 | 2xx | 550|553 (alternatives) [ENHANCED like 5.1.1] [/REGEX/]
//                      closed          the server closes the connection (EOF) -- a 421 first is allowed
//                      none MS         no reply within MS milliseconds
//   CAP: KEYWORD     the last reply (an EHLO reply) lists KEYWORD
//   NOCAP: KEYWORD   ... does not list it
//   STARTTLS         handshake TLS now (after the 220 to STARTTLS)
//   SLEEP: MS        wait
// ${name} is replaced from the target profile (domain, rcpt, unknown, sender, user, password,
// size_limit) and ${token} by a string unique to this run of this case.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace refsmtp::conform {

enum class Level { must, should, may };
std::string_view level_name(Level l);

struct Expect {
  enum class Kind { reply, closed, none } kind = Kind::reply;
  std::vector<std::string> codes;  // "250", "2xx", alternatives
  std::string enhanced;            // "" or "5.1.1" (may use x: "5.x.x")
  std::string regex;               // "" or a pattern the reply text must match
  int silence_ms = 0;              // for none
};

struct Step {
  enum class Kind { send, raw, expect, cap, nocap, starttls, sleep } kind;
  std::string text;  // send/raw payload, cap keyword
  Expect expect;
  int ms = 0;
  std::size_t line = 0;
};

struct Script {
  std::string file;
  std::string name, rfc, title;
  Level level = Level::must;
  std::vector<std::string> needs;
  std::vector<Step> steps;
};

struct ParseError {
  std::string message;  // "FILE:LINE: what"
};

std::optional<Script> parse_script(std::string_view text, const std::string& file, ParseError& error);

// Decodes RAW: escapes; nothing if malformed.
std::optional<std::string> unescape_raw(std::string_view s);
// Replaces ${name}; unknown names are an error (returned in `missing`).
std::string substitute(std::string_view s, const std::map<std::string, std::string>& vars, std::string& missing);

}  // namespace refsmtp::conform
