// WriteSelfSignedCertificate: the files parse back, the SAN lists every name,
// the key matches and is private, and bad input names the file.
#include "src/tls/self_signed.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/tls/openssl_util.h"

namespace ddv {
namespace tls {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

X509Ptr ReadCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

EvpPkeyPtr ReadKey(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) return nullptr;
  return EvpPkeyPtr(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<std::string> DnsNames(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_STRING* s = name->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST(SelfSignedTest, WritesTheDemoCertificate) {
  const std::vector<std::string> hosts = {"a.localhost", "*.a.localhost",
                                          "b.localhost", "localhost"};
  std::string cert_path = TempDir() + "/demo.crt";
  std::string key_path = TempDir() + "/demo.key";
  ASSERT_TRUE(WriteSelfSignedCertificate(hosts, cert_path, key_path,
                                         absl::Hours(24 * 30))
                  .ok());
  X509Ptr cert = ReadCert(cert_path);
  ASSERT_NE(cert, nullptr);
  EvpPkeyPtr key = ReadKey(key_path);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(DnsNames(cert.get()), hosts);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_utf8_string_param(key.get(), "group", group,
                                           sizeof(group), &group_len),
            1);
  EXPECT_STREQ(group, "prime256v1");
  // X509_check_host is what a verifying client does with the SAN.
  EXPECT_EQ(X509_check_host(cert.get(), "x.a.localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "c.localhost", 0, 0, nullptr), 0);
  // Valid now, and still in 29 days, not in 31.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
  time_t in_29_days = time(nullptr) + 29 * 86400;
  time_t in_31_days = time(nullptr) + 31 * 86400;
  EXPECT_GT(X509_cmp_time(X509_get0_notAfter(cert.get()), &in_29_days), 0);
  EXPECT_LT(X509_cmp_time(X509_get0_notAfter(cert.get()), &in_31_days), 0);
  // Self-signed: it verifies against itself.
  EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);

  struct stat st;
  ASSERT_EQ(stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SelfSignedTest, OverwritesAnOldKeyAndKeepsItPrivate) {
  std::string cert_path = TempDir() + "/again.crt";
  std::string key_path = TempDir() + "/again.key";
  FILE* f = std::fopen(key_path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  chmod(key_path.c_str(), 0644);
  ASSERT_TRUE(WriteSelfSignedCertificate({"x.test"}, cert_path, key_path,
                                         absl::Hours(1))
                  .ok());
  struct stat st;
  ASSERT_EQ(stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  X509Ptr cert = ReadCert(cert_path);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(DnsNames(cert.get()), std::vector<std::string>{"x.test"});
}

TEST(SelfSignedTest, ErrorsNameTheFile) {
  absl::Status status = WriteSelfSignedCertificate(
      {"a.localhost"}, "/nonexistent-dir/c.crt", "/nonexistent-dir/c.key",
      absl::Hours(1));
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent-dir/c.key"), std::string::npos)
      << status;
  status = WriteSelfSignedCertificate({}, TempDir() + "/n.crt",
                                      TempDir() + "/n.key", absl::Hours(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  status = WriteSelfSignedCertificate({"a,b"}, TempDir() + "/n.crt",
                                      TempDir() + "/n.key", absl::Hours(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tls
}  // namespace ddv
