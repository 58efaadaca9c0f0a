// The recipient policy decides once for RCPT and for delivery: the two must agree, word for word.
#include <gtest/gtest.h>

#include "recipient_policy.hpp"

namespace refsmtp::server {
namespace {

using smtp::make_path;

RecipientPolicy table_policy() {
  std::string error;
  auto table = delivery::LocalRecipients::parse("domains a.test\nalice\nbob\nteam: alice, bob, far@b.test\nlost: nowhere@c.test\n",
                                                "recipients", error);
  EXPECT_TRUE(table) << error;
  return RecipientPolicy({}, std::move(table), "mx.a.test");
}

const Routable only_b = [](const std::string& d) { return d == "b.test"; };

std::string line(const std::optional<smtp::Reply>& r) { return r ? r->format() : "accept"; }

TEST(RecipientPolicy, LocalMailboxesAreTakenAndDelivered) {
  const auto p = table_policy();
  EXPECT_EQ(line(p.at_rcpt(make_path("alice", "A.Test"), false, only_b)), "accept");
  const Targets t = p.targets_of(make_path("alice", "a.test"), only_b);
  EXPECT_EQ(t.mailboxes, std::vector<std::string>{"alice"});
  EXPECT_TRUE(t.remote.empty());
  EXPECT_FALSE(t.refusal);
}

TEST(RecipientPolicy, AnUnknownLocalMailboxIsRefusedWithTheSameReplyAtRcptAndAtDelivery) {
  const auto p = table_policy();
  const auto at_rcpt = p.at_rcpt(make_path("carol", "a.test"), true, only_b);
  ASSERT_TRUE(at_rcpt);
  EXPECT_EQ(at_rcpt->code, 550);
  EXPECT_EQ(line(at_rcpt), line(p.targets_of(make_path("carol", "a.test"), only_b).refusal));
}

TEST(RecipientPolicy, ForeignDomainsAreRelayedOnlyForAuthenticatedClientsAndOnlyWhereThereIsAWayOut) {
  const auto p = table_policy();
  const auto denied = p.at_rcpt(make_path("x", "b.test"), false, only_b);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->code, 554);  // not an open relay (RFC 5321 §3.6.2)
  EXPECT_EQ(line(p.at_rcpt(make_path("x", "b.test"), true, only_b)), "accept");
  const auto no_route = p.at_rcpt(make_path("x", "c.test"), true, only_b);
  ASSERT_TRUE(no_route);
  EXPECT_EQ(no_route->code, 550);
  EXPECT_EQ(line(no_route), line(p.targets_of(make_path("x", "c.test"), only_b).refusal));
  EXPECT_EQ(p.targets_of(make_path("x", "b.test"), only_b).remote.size(), 1u);
}

TEST(RecipientPolicy, AnAliasIsTakenAtRcptAndItsUnreachableTargetFailsAtDelivery) {
  const auto p = table_policy();
  EXPECT_EQ(line(p.at_rcpt(make_path("lost", "a.test"), false, only_b)), "accept");
  const Targets t = p.targets_of(make_path("lost", "a.test"), only_b);
  ASSERT_TRUE(t.refusal);
  EXPECT_NE(t.refusal->text().find("c.test"), std::string::npos) << t.refusal->text();
}

TEST(RecipientPolicy, AliasesExpandToOneQueueRecipientPerTargetWithoutDuplicates) {
  const auto p = table_policy();
  smtp::Envelope e;
  e.recipients.push_back({make_path("team", "a.test"), {}});
  e.recipients.push_back({make_path("Alice", "a.test"), {}});  // also a target of team
  const smtp::Envelope out = p.expand_aliases(e);
  std::vector<std::string> got;
  for (const auto& r : out.recipients) got.push_back(r.path.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"<alice@a.test>", "<bob@a.test>", "<far@b.test>"}));
}

TEST(RecipientPolicy, WithoutATableEverySafeLocalPartOfTheDomainsIsAMailbox) {
  const RecipientPolicy p({"Example.Test"}, std::nullopt, "mx.example.test");
  EXPECT_TRUE(p.is_local_domain("example.test"));
  EXPECT_EQ(line(p.at_rcpt(make_path("anyone", "EXAMPLE.test"), false, only_b)), "accept");
  EXPECT_EQ(p.at_rcpt(make_path("../etc", "example.test"), false, only_b)->code, 550);
  EXPECT_EQ(p.primary_domain(smtp::Path{}), "example.test");
}

}  // namespace
}  // namespace refsmtp::server
