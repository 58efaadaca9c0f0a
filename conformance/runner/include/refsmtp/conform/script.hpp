#pragma once
// Conformance cases as data: one transcript per file, in the C:/S: style RFCs use.
//
//   # case: nested-mail
//   # rfc: RFC 5321 §4.1.4
//   # level: MUST                  (MUST, SHOULD, MAY: the quoted sentence's keyword as it binds
//                                   the server; NOTE: no keyword binds the server -- a grammar,
//                                   a client's duty, robustness -- and a NOTE case that does not
//                                   hold is reported as deviation, never as a failed requirement)
//   # quote: The AUTH command is not permitted during a mail transaction.
//                                  (the RFC's sentence, verbatim; several lines are joined)
//   # needs: PIPELINING AUTH=PLAIN (EHLO keywords, or KEYWORD=PARAM for one of its parameters;
//                                   the case is skipped when the server does not advertise them)
//   # skip-when: accept_all        (skipped when the profile sets accept_all = yes: the server
//                                   takes every recipient, so a refusal cannot be judged;
//                                   trusted_client: the server trusts the runner's address, so
//                                   it may relay and take submissions without AUTH)
//   # needs-profile: remote_via_sink  (skipped unless the profile sets that flag to yes)
//   # port: mx                     (mx, the default; submission: the --submission target, in the
//                                   clear until the case says STARTTLS; submissions: the
//                                   --submissions target, TLS from the first byte)
//   # delivery: optional           (run even without --maildir/--sink, skipping only the
//                                   delivery steps; by default such a case is skipped)
//   # delivery: final              (the delivery checks judge final delivery, e.g. a
//                                   Return-Path: skipped unless the store is the target's own
//                                   mailboxes, --maildir, rather than a --sink it relays to)
//   # title: A second MAIL inside a transaction is refused with 503
//   S: 220
//   C: EHLO ${helo}
//   S: 250
//   C: MAIL FROM:<${sender}>
//   S: 250
//   C: MAIL FROM:<${sender}>
//   !S: 503
//
// A leading '!' marks the steps that assert the rule: only they can fail the case. Any other
// step that does not go as written is setup that went wrong, and makes the case inconclusive
// (the rule was never exercised); after the last '!' step the rest is teardown, only noted. A
// 421 where a step does not allow it ends the case as inconclusive too (RFC 5321 §3.8: a server
// may close with 421 whenever it must).
//
// Steps:
//   C: TEXT          send TEXT + CRLF. Consecutive C: lines go out in one write (pipelining).
//   RAW: BYTES       send BYTES as is (escapes \r \n \t \0 \\ \xHH), no CRLF added
//   S: EXPECT        read one reply and check it. EXPECT is one of
//                      250 | 2xx | 550|553 (alternatives) [ENHANCED like 5.1.1] [/REGEX/]
//                        ("closed" may be one of the alternatives: 221|closed)
//                      closed          the server closes the connection (EOF) -- a 421 first is allowed
//                      none MS         no reply within MS milliseconds (at least three times
//                                      the slowest reply seen so far in the case)
//   S*: EXPECT       zero or more replies, read until the server falls silent (as for none) or
//                    closes; every one must match EXPECT. Judges a property whatever the
//                    server's wording: after a smuggling attempt, "!S*: 2xx|4xx|5xx" fails only
//                    when a smuggled DATA was answered 354.
//   TIMEOUT: MS      wait up to MS for each following reply (and delivery) in this case, instead
//                    of the runner's --timeout (e.g. a server that pauses before a 5xx)
//   CAP: KEYWORD     the last reply (an EHLO reply) lists KEYWORD
//   NOCAP: KEYWORD   ... does not list it
//   AUTH             authenticate with the profile's user and password, by a mechanism the last
//                    EHLO reply offered (the profile's auth_mechanism, else PLAIN, else LOGIN);
//                    235 expected. AUTH WRONG: the same with a wrong password, a 5xx expected.
//   BDAT: BYTES      send "BDAT <size of BYTES>" CRLF, then BYTES (escapes as in RAW:, after
//                    ${...} substitution, so the size is always right); BDAT LAST: ... the same
//                    with LAST
//   FILL: N          send N octets of filler text lines (76 octets and CRLF each) as message data;
//   FILL: SIZE+N     ... the fixed limit the last EHLO reply gave with SIZE (RFC 1870), plus one
//                    octet in 77 (so a server counting CRLF as one octet is over it too), plus
//                    N octets: a message over the limit. Without a SIZE limit (or one above 64 MiB,
//                    more than a test should send) the step does not go as written.
//   BDAT FILL: SPEC, BDAT LAST FILL: SPEC
//                    a BDAT chunk of that much filler
//   STARTTLS         handshake TLS now (after the 220 to STARTTLS)
//   CLOSE            send what is pending, then close the connection (e.g. in the middle of DATA)
//   SLEEP: MS        send what is pending, then wait
//   IDLE             send what is pending, then wait out the server's command timeout: the
//                    profile's command_timeout (seconds) and 2 s more; a case with IDLE is
//                    skipped when the profile does not give command_timeout
//   SPLIT: N         send what is pending in writes of N octets, each its own TCP segment, 20 ms
//                    apart (a server must not depend on how the client's bytes are segmented)
//   DELIVERED: N     delivery check: exactly N messages containing this case's ${token} arrive in
//                    the --maildir or at the --sink (waits up to the step timeout for the largest
//                    count, then --settle); alternatives like 0|1 when a 5xx was allowed; N+
//                    for N or more (a server may deliver a duplicate recipient twice)
//   DELIVERED TO ADDRESS: N
//                    ... of them, exactly N (or N+, alternatives) delivered to ADDRESS: in its own
//                    Maildir (a folder below --maildir named for its local part) or with ADDRESS
//                    among the envelope recipients the --sink saw. A store that cannot tell
//                    recipients apart (one Maildir for all) leaves the case inconclusive.
//   BODY: BYTES      delivery check: the one delivered message with ${token} has this body (the
//                    part after the first empty line; escapes as in RAW:; CRLF and LF compare
//                    equal, since a mailbox may store either)
//   HEADER: NAME [/REGEX/]
//                    delivery check: the one delivered message with ${token} has a header field
//                    NAME (any case) whose unfolded value matches REGEX; ${...} in REGEX stand
//                    for their values taken literally
//   NOHEADER: NAME [/REGEX/]
//                    ... no field NAME (that matches REGEX, if given)
// ${name} is replaced from the target profile (domain, rcpt, unknown, sender, user, password, ...)
// and ${token} by a string unique to this run of this case. AUTH helpers, computed from the
// profile's user and password: ${auth_plain} (base64 of NUL user NUL password, RFC 4616),
// ${auth_plain_wrong} (the same with a wrong password), ${auth_plain_authzid} (authorization
// identity "${user}-other", then user and password), ${user_b64}, ${password_b64},
// ${password_wrong_b64} (for AUTH LOGIN).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace refsmtp::conform {

enum class Level { must, should, may, note };
std::string_view level_name(Level l);

struct Expect {
  enum class Kind { reply, closed, none } kind = Kind::reply;
  std::vector<std::string> codes;  // "250", "2xx", alternatives
  bool or_closed = false;          // "closed" was one of the alternatives
  std::string enhanced;            // "" or "5.1.1" (may use x: "5.x.x")
  std::string regex;               // "" or a pattern the reply text must match
  int silence_ms = 0;              // for none
};

struct Step {
  enum class Kind {
    send, raw, bdat, fill, idle, expect, expect_all, cap, nocap, auth, starttls, close, sleep, split, delivered, body, header, noheader, timeout
  } kind;
  bool asserts = false;  // marked '!': this step tests the rule; a failure here fails the case
  std::string text;      // send/raw/body payload, cap keyword, header field name
  Expect expect;
  int ms = 0;               // sleep, timeout: milliseconds; split: octets per write
  bool last = false;        // bdat: BDAT LAST; auth: AUTH WRONG
  bool fill = false;        // bdat: the chunk is filler of the size in `fill_octets` (plus the SIZE limit)
  bool fill_over_size = false;   // fill, bdat fill: SIZE+N
  std::size_t fill_octets = 0;   // fill, bdat fill: N
  std::string regex;        // header: the pattern for the field's value ("" = any)
  std::vector<int> counts;  // delivered: the message counts allowed
  bool at_least = false;    // delivered: "N+", N or more
  std::size_t line = 0;
};

struct Script {
  std::string file;
  std::string name, rfc, title;
  std::string quote;  // the RFC sentence the case tests, verbatim
  Level level = Level::must;
  std::vector<std::string> skip_when;      // profile flags (accept_all) under which the case skips
  std::vector<std::string> needs_profile;  // profile flags that must be yes, or the case skips
  std::vector<std::string> needs;
  std::string port = "mx";  // mx, submission or submissions
  bool delivery_optional = false;
  bool delivery_final = false;  // "# delivery: final": needs the target's own mailboxes (--maildir)
  std::vector<Step> steps;
  // True when a step checks delivery (DELIVERED:, BODY:, HEADER:).
  bool checks_delivery() const;
  // The index one past the last step marked '!' (the steps after it are teardown).
  std::size_t assertions_end() const;
};

struct ParseError {
  std::string message;  // "FILE:LINE: what"
};

std::optional<Script> parse_script(std::string_view text, const std::string& file, ParseError& error);

// Decodes RAW: escapes; nothing if malformed.
std::optional<std::string> unescape_raw(std::string_view s);
// Replaces ${name}; unknown names are an error (returned in `missing`). With `for_regex`, the
// values are escaped so that they match themselves literally inside a pattern.
std::string substitute(std::string_view s, const std::map<std::string, std::string>& vars, std::string& missing,
                       bool for_regex = false);
// Whether a quote holds a keyword of this level (RFC 2119: MUST, MUST NOT, REQUIRED, SHALL,
// SHALL NOT; SHOULD, SHOULD NOT, RECOMMENDED; MAY, OPTIONAL). A NOTE needs none. Lower-case
// words count only in an RFC (`rfc`: "RFC 1870 §7") older than RFC 2119, and in RFC 6152.
bool quote_has_keyword(std::string_view quote, Level level, std::string_view rfc = "");

}  // namespace refsmtp::conform
