#pragma once
// Host misuse of a sans-IO session, the category apart from peer faults (which become protocol
// replies): the host answered a question nobody asked, answered with a reply of the wrong class,
// reported a TLS handshake that was never started, or fed input while one is pending. A Fault
// is a bug in the host, never something a peer can cause.
namespace refsmtp::core {

enum class Fault { none, no_question_pending, reply_class_mismatch, not_in_handshake, not_ready };

}  // namespace refsmtp::core
