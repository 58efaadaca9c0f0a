// Client session reading untrusted server replies (curl-fuzzer's idea: script the server side).
//
// Input: one configuration byte, then operations:
//   0-5  the server sends: a length byte n, then n+1 bytes
//   6    the host acts: next byte selects send_message / quit / connection_lost / clock +60 s /
//        TLS handshake done / TLS failed
//
// Oracles: every message gets exactly one result per recipient; "delivered" only with a 2xx reply
// and "failed" only with a 5xx one; nothing is sent after Close.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_check.hpp"

#include "refsmtp/smtp/client_session.hpp"

namespace {

using namespace refsmtp::smtp;


OutgoingMessage make_message(std::uint8_t seed) {
  OutgoingMessage m;
  m.reverse_path.mailbox = Mailbox{"s", "client.test", false};
  const int n = 1 + seed % 4;
  for (int i = 0; i < n; ++i) {
    Path p;
    p.mailbox = Mailbox{"r" + std::to_string(i), (seed & 16) ? "b\xC3\xBC" "cher.test" : "mx.test", false};
    m.recipients.push_back(p);
  }
  m.body = (seed & 32) ? "Subject: x\r\n\r\ncaf\xC3\xA9\r\n.\r\n" : "Subject: x\r\n\r\n.hi\r\n";
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t c = data[0];
  ClientConfig cfg;
  cfg.lmtp = c & 1;
  cfg.tls = static_cast<TlsPolicy>((c >> 1) % 3);
  cfg.use_pipelining = c & 8;
  cfg.use_chunking = c & 16;
  if (c & 32) {
    cfg.auth_user = "u";
    cfg.auth_password = "p";
    cfg.tls_active = c & 64;
  }
  ClientSession client(cfg);
  std::size_t in_flight = 0;  // recipients of the message being sent
  bool closed = false;
  std::int64_t now = 0;

  auto drain = [&] {
    while (auto a = client.next_action()) {
      if (std::holds_alternative<client_action::Send>(*a)) {
        check(!closed);  // nothing is written after Close
      } else if (auto* r = std::get_if<client_action::MessageResult>(&*a)) {
        check(in_flight > 0);
        check(r->results.size() == in_flight);
        for (const auto& res : r->results) {
          if (res.status == DeliveryStatus::delivered) check(res.reply.klass() == 2);
          if (res.status == DeliveryStatus::failed) check(res.reply.klass() == 5);
        }
        in_flight = 0;
      } else if (std::holds_alternative<client_action::Close>(*a)) {
        closed = true;
      }
    }
  };
  drain();
  std::size_t i = 1;
  while (i < size && !client.closed()) {
    const std::uint8_t op = data[i++] % 7;
    const std::uint8_t arg = i < size ? data[i++] : 0;
    if (op <= 5) {
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(arg) + 1, size - i);
      client.receive(std::string_view(reinterpret_cast<const char*>(data + i), n));
      i += n;
    } else {
      switch (arg % 6) {
        case 0:
          if (client.ready()) {
            OutgoingMessage m = make_message(arg);
            const std::size_t count = m.recipients.size();
            check(client.send_message(std::move(m)) == Fault::none);
            in_flight = count;
          } else {
            check(client.send_message(make_message(arg)) == Fault::not_ready);
          }
          break;
        case 1: client.quit(); break;
        case 2: client.connection_lost(); break;
        case 3: now += 60'000; client.on_time(Millis(now)); break;
        case 4: client.tls_started(); break;
        case 5: client.tls_failed(); break;
      }
    }
    drain();
  }
  return 0;
}
