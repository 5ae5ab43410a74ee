// Session-ticket keys that every process of a site derives alike: HKDF-SHA256
// of a shared secret and the epoch (unix time / rotation). The current
// epoch's key encrypts new tickets; the current and the previous one decrypt,
// so a ticket stays usable for between one and two rotation periods, on any
// process that has the same secret.
#ifndef DDV_SRC_TLS_TICKET_KEYS_H_
#define DDV_SRC_TLS_TICKET_KEYS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ddv {
namespace tls {

// One epoch's key, laid out as RFC 5077 §4 suggests: a name the ticket
// carries in clear, an AES-256-CBC key and an HMAC-SHA256 key.
struct TicketKey {
  static constexpr size_t kNameBytes = 16;
  int64_t epoch = 0;
  unsigned char name[kNameBytes] = {};
  unsigned char aes_key[32] = {};
  unsigned char hmac_key[32] = {};
};

class TicketKeys {
 public:
  static constexpr size_t kSecretBytes = 32;

  // `secret` is kSecretBytes raw bytes; `clock` defaults to absl::Now (tests
  // inject their own to cross an epoch).
  static absl::StatusOr<std::unique_ptr<TicketKeys>> Create(
      std::string secret, absl::Duration rotation,
      std::function<absl::Time()> clock = nullptr);
  // A fresh random secret: tickets then resume on this process only.
  static std::string RandomSecret();
  // 64 hex digits → 32 bytes; anything else is InvalidArgument (the message
  // never echoes the secret).
  static absl::StatusOr<std::string> ParseSecretHex(absl::string_view hex);

  // The key new tickets are encrypted with now.
  TicketKey Current();
  // The key whose name is `name`, if it belongs to the current or the
  // previous epoch; `*previous` says which (a ticket under the previous key
  // is renewed).
  std::optional<TicketKey> Find(const unsigned char* name, bool* previous);

  int64_t EpochNow() const;

 private:
  TicketKeys(std::string secret, absl::Duration rotation,
             std::function<absl::Time()> clock);
  // Recomputes the cached keys when the epoch moved.
  void Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Derive(int64_t epoch, TicketKey* key) const;

  const std::string secret_;
  const int64_t rotation_seconds_;
  const std::function<absl::Time()> clock_;
  absl::Mutex mu_;
  bool cached_ ABSL_GUARDED_BY(mu_) = false;
  TicketKey current_ ABSL_GUARDED_BY(mu_);
  TicketKey previous_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tls
}  // namespace ddv

#endif  // DDV_SRC_TLS_TICKET_KEYS_H_
