// TicketKeys: deterministic per secret and epoch, current and previous
// epochs only, and the secret's hex form checked.
#include "src/tls/ticket_keys.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace ddv {
namespace tls {
namespace {

std::unique_ptr<TicketKeys> Make(const std::string& secret,
                                 std::shared_ptr<std::atomic<int64_t>> now) {
  auto keys = TicketKeys::Create(
      secret, absl::Minutes(10),
      [now] { return absl::FromUnixSeconds(now->load()); });
  EXPECT_TRUE(keys.ok()) << keys.status();
  return std::move(*keys);
}

TEST(TicketKeysTest, SameSecretSameKeysAndEpochsRotate) {
  auto now = std::make_shared<std::atomic<int64_t>>(6000);  // epoch 10
  std::string secret(32, 'k');
  auto one = Make(secret, now);
  auto two = Make(secret, now);
  auto other = Make(std::string(32, 'z'), now);
  TicketKey a = one->Current();
  TicketKey b = two->Current();
  EXPECT_EQ(a.epoch, 10);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0);
  TicketKey c = other->Current();
  EXPECT_NE(std::memcmp(a.name, c.name, sizeof(a.name)), 0);
  EXPECT_NE(std::memcmp(a.aes_key, a.hmac_key, sizeof(a.aes_key)), 0);

  bool previous = true;
  ASSERT_TRUE(two->Find(a.name, &previous).has_value());
  EXPECT_FALSE(previous);
  EXPECT_FALSE(other->Find(a.name, &previous).has_value());

  *now += 600;  // epoch 11: a is the previous key
  EXPECT_EQ(one->Current().epoch, 11);
  ASSERT_TRUE(two->Find(a.name, &previous).has_value());
  EXPECT_TRUE(previous);
  *now += 599;  // still epoch 11
  EXPECT_TRUE(two->Find(a.name, &previous).has_value());
  *now += 1;  // epoch 12: gone
  EXPECT_FALSE(two->Find(a.name, &previous).has_value());
  // A jump over many epochs derives both keys afresh.
  *now += 100000;
  EXPECT_EQ(one->Current().epoch, (6000 + 1200 + 100000) / 600);
}

TEST(TicketKeysTest, SecretHex) {
  std::string hex(64, 'a');
  absl::StatusOr<std::string> ok = TicketKeys::ParseSecretHex(hex);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, std::string(32, '\xaa'));
  EXPECT_FALSE(TicketKeys::ParseSecretHex(std::string(63, 'a')).ok());
  EXPECT_FALSE(TicketKeys::ParseSecretHex(std::string(64, 'g')).ok());
  EXPECT_FALSE(TicketKeys::Create("short", absl::Hours(1)).ok());
  EXPECT_FALSE(TicketKeys::Create(std::string(32, 'x'), absl::Seconds(0)).ok());
  EXPECT_EQ(TicketKeys::RandomSecret().size(), 32u);
  EXPECT_NE(TicketKeys::RandomSecret(), TicketKeys::RandomSecret());
}

}  // namespace
}  // namespace tls
}  // namespace ddv
