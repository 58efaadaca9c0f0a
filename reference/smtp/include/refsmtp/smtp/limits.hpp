#pragma once
// Size limits of RFC 5321 §4.5.3.1, in one place. Each is the largest accepted value; tests pin
// every limit at N-1, N and N+1.
#include <cstddef>

namespace refsmtp::smtp {

struct Limits {
  std::size_t local_part = 64;       // §4.5.3.1.1 maximum total length of a user name or local-part
  std::size_t domain = 255;          // §4.5.3.1.2 maximum total length of a domain name or number
  std::size_t path = 256;            // §4.5.3.1.3 maximum total length of a reverse/forward-path,
                                     //   counting the punctuation "<" ">"
  std::size_t command_line = 512;    // §4.5.3.1.4 command line incl. the verb and <CRLF>
  std::size_t auth_line = 12288;     // RFC 4954 §4: AUTH lines and SASL responses may be longer
  std::size_t text_line = 1000;      // §4.5.3.1.6 text line in DATA incl. <CRLF>, excl. stuffing dot
  std::size_t recipients = 100;      // §4.5.3.1.8 a server MUST accept at least 100 recipients
  std::size_t message_size = 32 * 1024 * 1024;  // RFC 1870 SIZE we advertise and enforce; 0 = none
  std::size_t errors = 10;           // bad commands before "421 too many errors" and close
  std::size_t buffered_input = 64 * 1024;  // input held while the host decides (back-pressure)
};

}  // namespace refsmtp::smtp
