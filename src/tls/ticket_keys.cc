// Ticket keys from HKDF-SHA256 (RFC 5869) over the shared secret, one per
// rotation epoch, cached for the current and previous epoch.
#include "src/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ddv {
namespace tls {
namespace {

// Changing either string changes every key: processes that must share
// tickets must agree on them (and on the secret and the rotation).
constexpr char kSalt[] = "ddv tls session ticket keys";
constexpr char kInfoPrefix[] = "ddv ticket key v1 epoch ";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TicketKeys>> TicketKeys::Create(
    std::string secret, absl::Duration rotation,
    std::function<absl::Time()> clock) {
  if (secret.size() != kSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ticket secret must be ", kSecretBytes, " bytes"));
  }
  if (rotation < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "the ticket key rotation must be at least 1s");
  }
  if (clock == nullptr) clock = [] { return absl::Now(); };
  std::unique_ptr<TicketKeys> keys(
      new TicketKeys(std::move(secret), rotation, std::move(clock)));
  // Fails only if the default provider lacks HKDF: find out now.
  TicketKey probe;
  if (!keys->Derive(0, &probe)) {
    return absl::InternalError("HKDF-SHA256 is not available from OpenSSL");
  }
  return keys;
}

std::string TicketKeys::RandomSecret() {
  std::string secret(kSecretBytes, '\0');
  CHECK_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()),
                      static_cast<int>(secret.size())),
           1)
      << "the OpenSSL random generator failed";
  return secret;
}

absl::StatusOr<std::string> TicketKeys::ParseSecretHex(absl::string_view hex) {
  if (hex.size() != 2 * kSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ticket secret must be ", 2 * kSecretBytes,
                     " hex digits (", kSecretBytes, " bytes), not ",
                     hex.size(), " characters"));
  }
  std::string out(kSecretBytes, '\0');
  for (size_t i = 0; i < kSecretBytes; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          "the ticket secret must be hex digits only");
    }
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

TicketKeys::TicketKeys(std::string secret, absl::Duration rotation,
                       std::function<absl::Time()> clock)
    : secret_(std::move(secret)),
      rotation_seconds_(absl::ToInt64Seconds(rotation)),
      clock_(std::move(clock)) {}

int64_t TicketKeys::EpochNow() const {
  int64_t now = absl::ToUnixSeconds(clock_());
  // Floor division, so times before 1970 (only in tests) still step evenly.
  int64_t epoch = now / rotation_seconds_;
  if (now % rotation_seconds_ < 0) --epoch;
  return epoch;
}

bool TicketKeys::Derive(int64_t epoch, TicketKey* key) const {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return false;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return false;
  std::string info = kInfoPrefix;
  // The epoch as 8 big-endian bytes.
  for (int shift = 56; shift >= 0; shift -= 8) {
    info.push_back(static_cast<char>((static_cast<uint64_t>(epoch) >> shift) &
                                     0xff));
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<char*>(secret_.data()),
          secret_.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                        const_cast<char*>(kSalt),
                                        sizeof(kSalt) - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  unsigned char out[sizeof(key->name) + sizeof(key->aes_key) +
                    sizeof(key->hmac_key)];
  bool ok = EVP_KDF_derive(ctx, out, sizeof(out), params) == 1;
  EVP_KDF_CTX_free(ctx);
  if (ok) {
    key->epoch = epoch;
    std::memcpy(key->name, out, sizeof(key->name));
    std::memcpy(key->aes_key, out + sizeof(key->name), sizeof(key->aes_key));
    std::memcpy(key->hmac_key, out + sizeof(key->name) + sizeof(key->aes_key),
                sizeof(key->hmac_key));
  }
  OPENSSL_cleanse(out, sizeof(out));
  return ok;
}

void TicketKeys::Refresh() {
  const int64_t epoch = EpochNow();
  if (cached_ && current_.epoch == epoch) return;
  if (cached_ && current_.epoch == epoch - 1) {
    previous_ = current_;
  } else {
    CHECK(Derive(epoch - 1, &previous_)) << "HKDF failed";
  }
  CHECK(Derive(epoch, &current_)) << "HKDF failed";
  cached_ = true;
}

TicketKey TicketKeys::Current() {
  absl::MutexLock lock(&mu_);
  Refresh();
  return current_;
}

std::optional<TicketKey> TicketKeys::Find(const unsigned char* name,
                                          bool* previous) {
  absl::MutexLock lock(&mu_);
  Refresh();
  if (CRYPTO_memcmp(name, current_.name, TicketKey::kNameBytes) == 0) {
    *previous = false;
    return current_;
  }
  if (CRYPTO_memcmp(name, previous_.name, TicketKey::kNameBytes) == 0) {
    *previous = true;
    return previous_;
  }
  return std::nullopt;
}

}  // namespace tls
}  // namespace ddv
