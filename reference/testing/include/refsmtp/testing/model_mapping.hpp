#pragma once
// The one place that maps the session's State to conformance/model's State, for the tests and
// the fuzz harness that judge the session with the model. (The model itself knows nothing of
// reference/smtp, so it cannot vouch for it by sharing its code.)
#include <cstdlib>

#include "refsmtp/smtp/server_session.hpp"
#include "refsmtp/model/smtp_model.hpp"

namespace refsmtp::testing {

inline model::State to_model(smtp::State s) {
  using smtp::State;
  switch (s) {
    case State::refused: return model::State::refused;
    case State::initial: return model::State::initial;
    case State::ready: return model::State::ready;
    case State::mail: return model::State::mail;
    case State::rcpt: return model::State::rcpt;
    case State::data: return model::State::data;
    case State::bdat: return model::State::bdat;
    case State::chunking: return model::State::chunking;
    case State::auth: return model::State::auth;
    case State::tls_handshake: return model::State::tls_handshake;
    case State::closed: return model::State::closed;
  }
  std::abort();
}

}  // namespace refsmtp::testing
