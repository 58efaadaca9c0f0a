// parse(serialize(e)) == e for envelopes with arbitrary bytes in every text field.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "refsmtp/queue/envelope_record.hpp"

using namespace refsmtp::queue;

namespace {
refsmtp::smtp::Path gen_path(bool allow_null) {
  refsmtp::smtp::Path p;
  if (allow_null && *rc::gen::arbitrary<bool>()) return p;
  p.mailbox = refsmtp::smtp::Mailbox{*rc::gen::arbitrary<std::string>(), *rc::gen::arbitrary<std::string>(),
                                     *rc::gen::arbitrary<bool>()};
  return p;
}
}  // namespace

RC_GTEST_PROP(EnvelopeRecord, SerializeParseRoundTrip, ()) {
  StoredEnvelope e;
  e.id = *rc::gen::arbitrary<std::string>();
  e.kind = *rc::gen::element(MessageKind::normal, MessageKind::bounce, MessageKind::notice);
  e.arrival_ms = *rc::gen::arbitrary<std::int64_t>();
  e.helo = *rc::gen::arbitrary<std::string>();
  e.client_address = *rc::gen::arbitrary<std::string>();
  e.reverse_path = gen_path(true);
  if (*rc::gen::arbitrary<bool>()) e.size = *rc::gen::arbitrary<std::uint64_t>();
  e.body_type = *rc::gen::element(refsmtp::smtp::BodyType::unspecified, refsmtp::smtp::BodyType::seven_bit,
                                  refsmtp::smtp::BodyType::eight_bit_mime, refsmtp::smtp::BodyType::binary_mime);
  e.smtputf8 = *rc::gen::arbitrary<bool>();
  if (*rc::gen::arbitrary<bool>()) e.auth = *rc::gen::arbitrary<std::string>();
  const int n = *rc::gen::inRange(0, 5);
  for (int i = 0; i < n; ++i) {
    e.recipients.push_back({gen_path(false),
                            *rc::gen::element(RecipientState::pending, RecipientState::delivered, RecipientState::failed),
                            *rc::gen::arbitrary<std::string>()});
  }
  e.attempts = *rc::gen::arbitrary<std::uint32_t>();
  e.next_attempt_ms = *rc::gen::arbitrary<std::int64_t>();
  e.delay_notified = *rc::gen::arbitrary<bool>();
  e.held = *rc::gen::arbitrary<bool>();
  e.body_size = *rc::gen::arbitrary<std::uint64_t>();
  e.body_hash = *rc::gen::arbitrary<std::uint64_t>();

  const std::string text = serialize(e);
  const auto r = parse_envelope(text);
  RC_ASSERT(r.envelope.has_value());
  RC_ASSERT(*r.envelope == e);
  RC_ASSERT(serialize(*r.envelope) == text);
}
