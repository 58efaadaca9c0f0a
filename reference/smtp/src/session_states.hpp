#pragma once
// State sets for the server session's command table, shared by its two source files.
#include "refsmtp/smtp/server_session.hpp"

namespace refsmtp::smtp::detail {

constexpr unsigned bit(State s) { return 1u << static_cast<unsigned>(s); }
// The states in which a command line is read as a command.
constexpr unsigned kCommandStates =
    bit(State::initial) | bit(State::ready) | bit(State::mail) | bit(State::rcpt) | bit(State::chunking);

}  // namespace refsmtp::smtp::detail
