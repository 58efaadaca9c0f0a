#pragma once
// The replies the server session sends, by name. Each carries its code, its enhanced status
// (RFC 3463; none for 354 and the like), its text, the RFC section that asks for it, and whether
// it answers a client error (a bad or misplaced command) and so counts toward Limits::errors.
// Call sites name a reply; the catalogue is the one place its wording and citation live.
#include <string>
#include <string_view>

#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::smtp {

struct NamedReply {
  int code;
  EnhancedStatus status;  // klass 0: no enhanced status
  std::string_view text;
  std::string_view section;
  bool client_error = false;

  bool has_status() const { return status.klass != 0; }
  // As a Reply; `detail`, when given, follows the text after ": ".
  Reply to_reply(std::string_view detail = {}) const;
  // With a host name before the text ("mx.example Bye"), as §4.1.1.10 and §3.8 replies are.
  Reply with_host(std::string_view hostname) const;
};

namespace replies {

// Command lines (RFC 5321 §4.1, §4.2).
inline constexpr NamedReply line_too_long{500, {5, 5, 2}, "Line too long", "RFC 5321 §4.5.3.1.4, §4.5.3.1.9", true};
inline constexpr NamedReply bare_lf_in_command{500, {5, 5, 2}, "Syntax error: bare LF in a command line", "RFC 5321 §2.3.8", true};
inline constexpr NamedReply command_unrecognized{500, {5, 5, 1}, "Command unrecognized", "RFC 5321 §4.2.4", true};
inline constexpr NamedReply syntax_error{501, {5, 5, 4}, "Syntax error", "RFC 5321 §4.2.2", true};
inline constexpr NamedReply bad_sender_syntax{501, {5, 1, 7}, "Syntax error", "RFC 5321 §4.2.2, RFC 3463 §3.2", true};
inline constexpr NamedReply bad_recipient_syntax{501, {5, 1, 3}, "Syntax error", "RFC 5321 §4.2.2, RFC 3463 §3.2", true};
inline constexpr NamedReply bdat_syntax{501, {5, 5, 4}, "Syntax: BDAT size [LAST]", "RFC 3030 §2", true};
inline constexpr NamedReply unsupported_parameter{555, {5, 5, 4}, "Unsupported parameter", "RFC 5321 §4.1.1.11", true};
inline constexpr NamedReply parameters_need_ehlo{555, {5, 5, 4}, "Parameters need EHLO", "RFC 5321 §4.1.1.11", true};
// RFC 6531 §3.5: "When messages are rejected because the RCPT command requires an ASCII address,
// the reply-code 553 is returned ... When messages are rejected because the MAIL command requires
// an ASCII address, the reply-code 550 is returned", both with X.6.7.
inline constexpr NamedReply utf8_sender_needs_smtputf8{550, {5, 6, 7}, "Non-ASCII address needs SMTPUTF8", "RFC 6531 §3.5"};
inline constexpr NamedReply utf8_recipient_needs_smtputf8{553, {5, 6, 7}, "Non-ASCII address needs SMTPUTF8", "RFC 6531 §3.5"};

// Order of commands (RFC 5321 §4.1.4, §3.1).
inline constexpr NamedReply bad_sequence{503, {5, 5, 1}, "Bad sequence of commands", "RFC 5321 §4.1.4, §3.1", true};
inline constexpr NamedReply hello_first{503, {5, 5, 1}, "Send EHLO or HELO first", "RFC 5321 §4.1.4", true};
inline constexpr NamedReply nested_mail{503, {5, 5, 1}, "Bad sequence of commands: Nested MAIL command", "RFC 5321 §4.1.4", true};
inline constexpr NamedReply rcpt_needs_mail{503, {5, 5, 1}, "Bad sequence of commands: Need MAIL before RCPT", "RFC 5321 §4.1.4", true};
inline constexpr NamedReply data_needs_rcpt{503, {5, 5, 1}, "Bad sequence of commands: Need RCPT before DATA", "RFC 5321 §4.1.4", true};
inline constexpr NamedReply bdat_needs_rcpt{503, {5, 5, 1}, "Bad sequence of commands: need MAIL and RCPT before BDAT", "RFC 5321 §4.1.4", true};
inline constexpr NamedReply starttls_out_of_sequence{503, {5, 5, 1}, "Bad sequence of commands: STARTTLS only before a transaction, after EHLO",
                                                      "RFC 5321 §4.1.4", true};
inline constexpr NamedReply auth_out_of_sequence{503, {5, 5, 1}, "Bad sequence of commands: AUTH only before a transaction, after EHLO",
                                                  "RFC 4954 §4", true};
inline constexpr NamedReply no_valid_recipients{554, {5, 5, 1}, "No valid recipients", "RFC 5321 §3.3"};

// Transactions.
inline constexpr NamedReply ok{250, {2, 0, 0}, "OK", "RFC 5321 §4.1.1.5, §4.1.1.9"};
inline constexpr NamedReply sender_ok{250, {2, 1, 0}, "Sender OK", "RFC 5321 §3.3"};
inline constexpr NamedReply sender_rejected{550, {5, 7, 1}, "Sender rejected", "RFC 5321 §3.3, §7.9"};
inline constexpr NamedReply recipient_ok{250, {2, 1, 5}, "Recipient OK", "RFC 5321 §3.3"};
inline constexpr NamedReply no_such_user{550, {5, 1, 1}, "No such user", "RFC 5321 §3.3"};
inline constexpr NamedReply too_many_recipients{452, {4, 5, 3}, "Too many recipients", "RFC 5321 §4.5.3.1.10"};
inline constexpr NamedReply message_too_big{552, {5, 3, 4}, "Message size exceeds fixed maximum message size", "RFC 1870 §6.1, §6.2, §6.3"};
inline constexpr NamedReply start_data{354, {0, 0, 0}, "End data with <CR><LF>.<CR><LF>", "RFC 5321 §4.1.1.4"};
inline constexpr NamedReply data_line_too_long{500, {5, 5, 2}, "Line too long", "RFC 5321 §4.5.3.1.6, §4.5.3.1.9"};
inline constexpr NamedReply bare_cr_lf_in_data{554, {5, 6, 0}, "Bare CR or LF in message data", "RFC 5321 §2.3.8"};
inline constexpr NamedReply binarymime_needs_bdat{503, {5, 5, 1}, "BODY=BINARYMIME requires BDAT", "RFC 3030 §3", true};
inline constexpr NamedReply bdat_not_offered{502, {5, 5, 1}, "BDAT not offered", "RFC 5321 §4.2.4", true};
inline constexpr NamedReply chunk_accepted{250, {2, 0, 0}, "Chunk accepted", "RFC 3030 §2"};
inline constexpr NamedReply message_stored{250, {2, 0, 0}, "OK", "RFC 5321 §4.1.1.4, §6.1"};
inline constexpr NamedReply message_not_stored{451, {4, 3, 0}, "Message not stored, try again later", "RFC 5321 §4.1.1.4"};

// Other commands.
inline constexpr NamedReply cannot_vrfy{252, {2, 5, 0}, "Cannot VRFY user, but will accept message and attempt delivery", "RFC 5321 §3.5.3"};
inline constexpr NamedReply expn_not_supported{502, {5, 5, 1}, "EXPN not supported", "RFC 5321 §4.2.4", true};
inline constexpr NamedReply bye{221, {2, 0, 0}, "Bye", "RFC 5321 §4.1.1.10"};

// STARTTLS (RFC 3207) and AUTH (RFC 4954, RFC 4616).
inline constexpr NamedReply starttls_required{530, {5, 7, 0}, "Must issue a STARTTLS command first", "RFC 3207 §4"};
inline constexpr NamedReply starttls_not_offered{502, {5, 5, 1}, "STARTTLS not offered", "RFC 5321 §4.2.4", true};
inline constexpr NamedReply tls_already_active{503, {5, 5, 1}, "TLS already active", "RFC 3207 §4.2", true};
inline constexpr NamedReply ready_for_tls{220, {2, 0, 0}, "Ready to start TLS", "RFC 3207 §4"};
inline constexpr NamedReply auth_required{530, {5, 7, 0}, "Authentication required", "RFC 4954 §6"};
inline constexpr NamedReply auth_not_offered{502, {5, 5, 1}, "AUTH not offered", "RFC 5321 §4.2.4", true};
inline constexpr NamedReply already_authenticated{503, {5, 5, 1}, "Already authenticated", "RFC 4954 §4", true};
// RFC 4954 §4: "If the requested authentication mechanism is invalid (e.g., is not supported or
// requires an encryption layer), the server rejects the AUTH command with a 504 reply" (SHOULD
// 5.5.4); §6 keeps 538 "for historical purposes only".
inline constexpr NamedReply encryption_required{504, {5, 5, 4}, "Authentication mechanism requires TLS: use STARTTLS first",
                                                 "RFC 4954 §4"};
inline constexpr NamedReply unrecognized_auth_type{504, {5, 5, 4}, "Unrecognized authentication type", "RFC 4954 §4", true};
inline constexpr NamedReply auth_cancelled{501, {5, 0, 0}, "Authentication cancelled", "RFC 4954 §4", true};
inline constexpr NamedReply invalid_base64{501, {5, 5, 2}, "Invalid base64 data", "RFC 4954 §4", true};
inline constexpr NamedReply malformed_plain{501, {5, 5, 2}, "Malformed PLAIN response", "RFC 4616 §2", true};
inline constexpr NamedReply auth_line_too_long{500, {5, 5, 6}, "Authentication exchange line is too long", "RFC 4954 §4", true};
inline constexpr NamedReply auth_line_malformed{501, {5, 5, 2}, "Authentication exchange line is malformed", "RFC 4954 §4", true};
inline constexpr NamedReply auth_ok{235, {2, 7, 0}, "Authentication successful", "RFC 4954 §6"};
inline constexpr NamedReply auth_invalid{535, {5, 7, 8}, "Authentication credentials invalid", "RFC 4954 §6"};

// Closing (RFC 5321 §3.8).
inline constexpr NamedReply too_many_errors{421, {4, 7, 0}, "Too many errors, closing connection", "RFC 5321 §7.8"};
inline constexpr NamedReply shutting_down{421, {4, 3, 2}, "Service shutting down", "RFC 5321 §3.8"};
inline constexpr NamedReply timeout{421, {4, 4, 2}, "Timeout, closing connection", "RFC 5321 §4.5.3.2, §3.8"};

// Every entry, for the tests that check the catalogue as a whole.
inline constexpr const NamedReply* all[] = {
    &line_too_long, &bare_lf_in_command, &command_unrecognized, &syntax_error, &bad_sender_syntax, &bad_recipient_syntax,
    &bdat_syntax, &unsupported_parameter, &parameters_need_ehlo, &utf8_sender_needs_smtputf8, &utf8_recipient_needs_smtputf8, &bad_sequence, &hello_first,
    &nested_mail, &rcpt_needs_mail, &data_needs_rcpt, &bdat_needs_rcpt, &starttls_out_of_sequence, &auth_out_of_sequence,
    &no_valid_recipients, &ok, &sender_ok, &sender_rejected, &recipient_ok, &no_such_user, &too_many_recipients,
    &message_too_big, &start_data, &data_line_too_long, &bare_cr_lf_in_data, &binarymime_needs_bdat, &bdat_not_offered,
    &chunk_accepted, &message_stored, &message_not_stored, &cannot_vrfy, &expn_not_supported, &bye, &starttls_required,
    &starttls_not_offered, &tls_already_active, &ready_for_tls, &auth_required, &auth_not_offered, &already_authenticated,
    &encryption_required, &unrecognized_auth_type, &auth_cancelled, &invalid_base64, &malformed_plain, &auth_line_too_long, &auth_line_malformed,
    &auth_ok, &auth_invalid, &too_many_errors, &shutting_down, &timeout,
};

}  // namespace replies
}  // namespace refsmtp::smtp
