// ClientSession against ServerSession in memory, over generated messages, recipient verdicts and
// extension mixes: the server stores exactly the body the client was given, once, and every
// recipient's result matches what the server's host decided.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>

#include "refsmtp/smtp/client_session.hpp"
#include "session_driver.hpp"

using namespace refsmtp::smtp;
using namespace refsmtp::smtp::testing;

RC_GTEST_PROP(ClientServer, BodiesArriveExactlyAndResultsMatchVerdicts, ()) {
  const auto lines = *rc::gen::container<std::vector<std::string>>(rc::gen::container<std::string>(
      rc::gen::weightedOneOf<char>({{3, rc::gen::just('.')}, {10, rc::gen::inRange<char>('a', 'z')},
                                    {1, rc::gen::just(' ')}})));
  std::string body;
  for (const auto& l : lines) body += l + "\r\n";
  const int n = *rc::gen::inRange(1, 6);
  const int refused_mask = *rc::gen::inRange(0, 1 << n);
  std::set<int> refused;
  for (int i = 0; i < n; ++i) {
    if (refused_mask & (1 << i)) refused.insert(i);
  }

  ServerConfig scfg = test_config();
  scfg.pipelining = *rc::gen::arbitrary<bool>();
  scfg.chunking = *rc::gen::arbitrary<bool>();
  scfg.starttls = *rc::gen::arbitrary<bool>();
  Driver server(scfg);
  server.policy = [&](const Action& a) {
    if (auto* r = std::get_if<action::CheckRecipient>(&a)) {
      const int i = std::stoi(r->path.mailbox->local_part.substr(1));
      if (refused.count(i)) return Verdict::reject(make_reply(550, 5, 1, 1, "no"));
    }
    return Verdict::accept();
  };
  ClientConfig ccfg;
  ccfg.use_pipelining = *rc::gen::arbitrary<bool>();
  ccfg.use_chunking = *rc::gen::arbitrary<bool>();
  ClientSession client(ccfg);

  OutgoingMessage msg;
  msg.reverse_path.mailbox = Mailbox{"s", "client.test", false};
  for (int i = 0; i < n; ++i) {
    Path p;
    p.mailbox = Mailbox{"r" + std::to_string(i), "mx.test", false};
    msg.recipients.push_back(p);
  }
  msg.body = body;

  std::size_t seen = 0;
  std::vector<RecipientResult> results;
  bool sent = false;
  for (int guard = 0; guard < 200; ++guard) {
    bool progress = false;
    if (server.t.output.size() > seen) {
      // Deliver the server's bytes in two arbitrary pieces.
      const std::string_view fresh = std::string_view(server.t.output).substr(seen);
      const std::size_t cut = fresh.size() / 2;
      client.receive(fresh.substr(0, cut));
      client.receive(fresh.substr(cut));
      seen = server.t.output.size();
      progress = true;
    }
    while (auto a = client.next_action()) {
      progress = true;
      if (auto* s = std::get_if<client_action::Send>(&*a)) server.feed(s->bytes);
      if (std::holds_alternative<client_action::StartTls>(*a)) client.tls_started();
      if (auto* r = std::get_if<client_action::MessageResult>(&*a)) results = r->results;
    }
    if (client.ready() && !sent) {
      RC_ASSERT(client.send_message(msg) == Fault::none);
      sent = true;
      progress = true;
    }
    if (!progress) break;
  }
  RC_ASSERT(sent);
  RC_ASSERT(client.ready());
  RC_ASSERT(results.size() == static_cast<std::size_t>(n));
  const bool any_accepted = static_cast<int>(refused.size()) < n;
  for (int i = 0; i < n; ++i) {
    const auto expected = refused.count(i) ? DeliveryStatus::failed : DeliveryStatus::delivered;
    RC_ASSERT(results[static_cast<std::size_t>(i)].status == expected);
  }
  if (any_accepted) {
    RC_ASSERT(server.t.messages == std::vector<std::string>{body});
  } else {
    RC_ASSERT(server.t.messages.empty());
  }
}
