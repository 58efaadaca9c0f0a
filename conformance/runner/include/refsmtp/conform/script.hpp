#pragma once
// Conformance cases as data: one transcript per file, in the C:/S: style RFCs use.
//
//   # case: mail-before-helo
//   # rfc: RFC 5321 §4.1.4
//   # level: MUST
//   # needs: PIPELINING            (EHLO keywords the case needs; skipped when not advertised)
//   # port: mx                     (mx, the default; submission: the --submission target, in the
//                                   clear until the case says STARTTLS; submissions: the
//                                   --submissions target, TLS from the first byte)
//   # delivery: optional           (run even without --maildir/--sink, skipping only the
//                                   DELIVERED:/BODY: steps; by default such a case is skipped)
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
//   TIMEOUT: MS      wait up to MS for each following reply (and delivery) in this case, instead
//                    of the runner's --timeout (e.g. a server that pauses before a 5xx)
//   CAP: KEYWORD     the last reply (an EHLO reply) lists KEYWORD
//   NOCAP: KEYWORD   ... does not list it
//   BDAT: BYTES      send "BDAT <size of BYTES>" CRLF, then BYTES (escapes as in RAW:, after
//                    ${...} substitution, so the size is always right); BDAT LAST: ... the same
//                    with LAST
//   STARTTLS         handshake TLS now (after the 220 to STARTTLS)
//   CLOSE            send what is pending, then close the connection (e.g. in the middle of DATA)
//   SLEEP: MS        send what is pending, then wait
//   SPLIT: N         send what is pending in writes of N octets, each its own TCP segment, 20 ms
//                    apart (a server must not depend on how the client's bytes are segmented)
//   DELIVERED: N     delivery check: exactly N messages containing this case's ${token} arrive in
//                    the --maildir or at the --sink (waits up to the step timeout for the largest
//                    count, then --settle); alternatives like 0|1 when a 5xx was allowed
//   BODY: BYTES      delivery check: the one delivered message with ${token} has this body (the
//                    part after the first empty line; escapes as in RAW:; CRLF and LF compare
//                    equal, since a mailbox may store either)
// ${name} is replaced from the target profile (domain, rcpt, unknown, sender, user, password, ...)
// and ${token} by a string unique to this run of this case. AUTH helpers, computed from the
// profile's user and password: ${auth_plain} (base64 of NUL user NUL password, RFC 4616),
// ${auth_plain_wrong} (the same with a wrong password), ${user_b64}, ${password_b64},
// ${password_wrong_b64} (for AUTH LOGIN).
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
  enum class Kind { send, raw, bdat, expect, cap, nocap, starttls, close, sleep, split, delivered, body, timeout } kind;
  std::string text;  // send/raw/body payload, cap keyword
  Expect expect;
  int ms = 0;               // sleep, timeout: milliseconds; split: octets per write
  bool last = false;        // bdat: BDAT LAST
  std::vector<int> counts;  // delivered: the message counts allowed
  std::size_t line = 0;
};

struct Script {
  std::string file;
  std::string name, rfc, title;
  Level level = Level::must;
  std::vector<std::string> needs;
  std::string port = "mx";  // mx, submission or submissions
  bool delivery_optional = false;
  std::vector<Step> steps;
  // True when a step checks delivery (DELIVERED:, BODY:).
  bool checks_delivery() const;
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
