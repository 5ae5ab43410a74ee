// TlsServerContext against a real OpenSSL client (memory BIOs): certificate
// choice by SNI among several hosts, ALPN policy, protocol versions, session
// tickets shared by secret across contexts and across a key rotation, and
// reload.
#include "src/tls/tls_context.h"

#include <openssl/ssl.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/tls/tls_session.h"
#include "tests/tls/tls_test_client.h"

namespace ddv {
namespace tls {
namespace {

using ::ddv::tls::testing::ClientOptions;
using ::ddv::tls::testing::Handshake;
using ::ddv::tls::testing::MakeCertificate;
using ::ddv::tls::testing::TempPath;
using ::ddv::tls::testing::TestClient;
using ::testing::Contains;
using ::testing::ElementsAre;

constexpr char kSecretA[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr char kSecretB[] =
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

std::unique_ptr<TlsServerContext> MakeContext(TlsOptions options) {
  absl::StatusOr<std::unique_ptr<TlsServerContext>> context =
      TlsServerContext::Create(std::move(options));
  EXPECT_TRUE(context.ok()) << context.status();
  return context.ok() ? std::move(*context) : nullptr;
}

std::unique_ptr<TlsSession> NewSession(const TlsServerContext& context) {
  absl::StatusOr<std::unique_ptr<TlsSession>> session =
      TlsSession::Create(context);
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? std::move(*session) : nullptr;
}

// One full connection; returns what the client saw.
struct Outcome {
  bool ok = false;
  std::string error;
  std::vector<std::string> names;  // the certificate's DNS SANs
  std::string server_sni;
  std::string alpn;  // server side
  std::string client_alpn;
  std::string version;
  bool reused = false;
  SSL_SESSION* session = nullptr;  // caller frees
};

Outcome Connect(const TlsServerContext& context, const ClientOptions& options) {
  Outcome outcome;
  TestClient client(options);
  std::unique_ptr<TlsSession> server = NewSession(context);
  absl::Status status = Handshake(client, *server);
  outcome.ok = status.ok();
  outcome.error = status.ToString();
  outcome.names = client.PeerDnsNames();
  outcome.server_sni = server->sni();
  outcome.alpn = server->alpn();
  const unsigned char* alpn = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(client.ssl(), &alpn, &len);
  outcome.client_alpn.assign(reinterpret_cast<const char*>(alpn), len);
  outcome.version = server->version();
  outcome.reused = server->session_reused();
  EXPECT_EQ(outcome.reused, SSL_session_reused(client.ssl()) == 1);
  if (outcome.ok) outcome.session = client.TakeSession();
  return outcome;
}

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = MakeCertificate("a", {"a.localhost", "*.a.localhost"});
    b_ = MakeCertificate("b", {"b.localhost"});
    c_ = MakeCertificate("c", {"c.example", "www.c.example"});
  }
  TlsOptions Options() {
    TlsOptions options;
    options.certificates = {a_, b_, c_};
    return options;
  }
  CertificateFiles a_, b_, c_;
};

TEST_F(TlsContextTest, SniPicksTheCertificateAmongSeveralHosts) {
  std::unique_ptr<TlsServerContext> context = MakeContext(Options());
  ASSERT_NE(context, nullptr);
  const std::vector<std::string> a = {"a.localhost", "*.a.localhost"};
  const std::vector<std::string> b = {"b.localhost"};
  const std::vector<std::string> c = {"c.example", "www.c.example"};
  struct Case {
    std::string sni;
    std::vector<std::string> names;
  } cases[] = {
      {"a.localhost", a},
      {"b.localhost", b},
      {"www.c.example", c},
      {"c.example", c},
      {"B.LocalHost.", b},      // case and trailing dot do not matter
      {"x.a.localhost", a},     // wildcard: one label
      {"y.x.a.localhost", a},   // two labels: no match, so the default (a)
      {"x.b.localhost", a},     // no wildcard for b: the default
      {"unknown.test", a},      // the default
  };
  for (const Case& test : cases) {
    ClientOptions options;
    options.sni = test.sni;
    Outcome outcome = Connect(*context, options);
    ASSERT_TRUE(outcome.ok) << test.sni << ": " << outcome.error;
    EXPECT_EQ(outcome.names, test.names) << test.sni;
    EXPECT_EQ(outcome.server_sni, test.sni);
    SSL_SESSION_free(outcome.session);
  }
  // Among b's names only: a context whose default is c still gives b.
  TlsOptions reordered = Options();
  reordered.certificates = {c_, b_};
  std::unique_ptr<TlsServerContext> other = MakeContext(reordered);
  ClientOptions options;
  options.sni = "b.localhost";
  Outcome outcome = Connect(*other, options);
  EXPECT_EQ(outcome.names, b);
  SSL_SESSION_free(outcome.session);
  EXPECT_EQ(context->counters().sni_selected.load(), 6u);
  EXPECT_EQ(context->counters().sni_default.load(), 3u);
}

TEST_F(TlsContextTest, NoSniGetsTheDefaultCertificate) {
  std::unique_ptr<TlsServerContext> context = MakeContext(Options());
  Outcome outcome = Connect(*context, ClientOptions());
  ASSERT_TRUE(outcome.ok) << outcome.error;
  EXPECT_THAT(outcome.names, ElementsAre("a.localhost", "*.a.localhost"));
  EXPECT_EQ(outcome.server_sni, "");
  SSL_SESSION_free(outcome.session);
}

TEST_F(TlsContextTest, CommonNameIsUsedOnlyWithoutSubjectAltNames) {
  // A certificate with a CN and no SAN at all (made by the openssl CLI).
  std::string cert = TempPath("cn.crt");
  std::string key = TempPath("cn.key");
  std::string command = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 1 -subj /CN=cn.example -keyout ",
      key, " -out ", cert, " >/dev/null 2>&1");
  ASSERT_EQ(std::system(command.c_str()), 0);
  TlsOptions options = Options();
  options.certificates.push_back({cert, key});
  std::unique_ptr<TlsServerContext> context = MakeContext(options);
  ClientOptions client;
  client.sni = "cn.example";
  TestClient c(client);
  std::unique_ptr<TlsSession> server = NewSession(*context);
  ASSERT_TRUE(Handshake(c, *server).ok());
  X509* peer = SSL_get0_peer_certificate(c.ssl());
  ASSERT_NE(peer, nullptr);
  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                            sizeof(cn));
  EXPECT_STREQ(cn, "cn.example");
}

TEST_F(TlsContextTest, AlpnFollowsTheServerListAndNeverInventsH2) {
  std::unique_ptr<TlsServerContext> context = MakeContext(Options());
  struct Case {
    std::vector<std::string> offered;
    std::string selected;
  } cases[] = {
      {{"h2", "http/1.1"}, "http/1.1"},  // h2 offered but not configured
      {{"http/1.1"}, "http/1.1"},
      {{"acme-tls/1"}, ""},  // nothing in common: no ALPN, no failure
      {{"h2"}, ""},
      {{}, ""},  // no extension at all
  };
  for (const Case& test : cases) {
    ClientOptions options;
    options.sni = "a.localhost";
    options.alpn = test.offered;
    Outcome outcome = Connect(*context, options);
    ASSERT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.alpn, test.selected);
    EXPECT_EQ(outcome.client_alpn, test.selected);
    SSL_SESSION_free(outcome.session);
  }
  EXPECT_EQ(context->counters().alpn_selected.load(), 2u);
  EXPECT_EQ(context->counters().alpn_none.load(), 2u);

  // The server's preference wins when it does list h2.
  TlsOptions h2 = Options();
  h2.alpn_protocols = {"h2", "http/1.1"};
  std::unique_ptr<TlsServerContext> h2_context = MakeContext(h2);
  ClientOptions options;
  options.alpn = {"http/1.1", "h2"};
  Outcome outcome = Connect(*h2_context, options);
  EXPECT_EQ(outcome.alpn, "h2");
  SSL_SESSION_free(outcome.session);
}

TEST_F(TlsContextTest, Tls12AndTls13OnlyWhenForced) {
  std::unique_ptr<TlsServerContext> context = MakeContext(Options());
  for (auto [version, name] : {std::pair<int, const char*>{TLS1_2_VERSION,
                                                           "TLSv1.2"},
                               {TLS1_3_VERSION, "TLSv1.3"}}) {
    ClientOptions options;
    options.sni = "b.localhost";
    options.min_version = options.max_version = version;
    Outcome outcome = Connect(*context, options);
    ASSERT_TRUE(outcome.ok) << name << ": " << outcome.error;
    EXPECT_EQ(outcome.version, name);
    EXPECT_THAT(outcome.names, ElementsAre("b.localhost"));
    SSL_SESSION_free(outcome.session);
  }
  // TLS 1.1 is refused with an alert, and counted.
  ClientOptions old;
  old.min_version = TLS1_VERSION;
  old.max_version = TLS1_1_VERSION;
  Outcome outcome = Connect(*context, old);
  EXPECT_FALSE(outcome.ok);
  EXPECT_THAT(outcome.error, ::testing::HasSubstr("unsupported protocol"));
  EXPECT_EQ(context->counters().handshake_failures.load(), 1u);
  EXPECT_EQ(context->counters().handshakes.load(), 2u);
}

class TicketTest : public TlsContextTest,
                   public ::testing::WithParamInterface<int> {};

TEST_P(TicketTest, TicketFromOneContextResumesOnAnotherWithTheSameSecret) {
  TlsOptions options = Options();
  options.ticket_secret_hex = kSecretA;
  std::unique_ptr<TlsServerContext> a = MakeContext(options);
  std::unique_ptr<TlsServerContext> b = MakeContext(options);  // "process 2"
  options.ticket_secret_hex = kSecretB;
  std::unique_ptr<TlsServerContext> c = MakeContext(options);
  TlsOptions random = Options();  // no secret: a random one
  std::unique_ptr<TlsServerContext> d = MakeContext(random);

  ClientOptions first;
  first.sni = "a.localhost";
  first.min_version = first.max_version = GetParam();
  Outcome issued = Connect(*a, first);
  ASSERT_TRUE(issued.ok) << issued.error;
  EXPECT_FALSE(issued.reused);
  ASSERT_NE(issued.session, nullptr);
  ASSERT_EQ(SSL_SESSION_is_resumable(issued.session), 1);
  EXPECT_GE(a->counters().tickets_issued.load(), 1u);

  ClientOptions again = first;
  again.session = issued.session;
  Outcome on_b = Connect(*b, again);
  ASSERT_TRUE(on_b.ok) << on_b.error;
  EXPECT_TRUE(on_b.reused);
  EXPECT_EQ(b->counters().resumed.load(), 1u);

  Outcome on_c = Connect(*c, again);
  ASSERT_TRUE(on_c.ok) << on_c.error;  // a full handshake instead
  EXPECT_FALSE(on_c.reused);
  EXPECT_EQ(c->counters().tickets_unknown_key.load(), 1u);
  EXPECT_EQ(c->counters().resumed.load(), 0u);

  Outcome on_d = Connect(*d, again);
  ASSERT_TRUE(on_d.ok) << on_d.error;
  EXPECT_FALSE(on_d.reused);

  SSL_SESSION_free(issued.session);
  SSL_SESSION_free(on_b.session);
  SSL_SESSION_free(on_c.session);
  SSL_SESSION_free(on_d.session);
}

TEST_P(TicketTest, PreviousEpochKeyStillDecryptsAfterARotation) {
  // Both contexts read one injected clock; epochs are 1 hour.
  auto now = std::make_shared<std::atomic<int64_t>>(1700000000);
  TlsOptions options = Options();
  options.ticket_secret_hex = kSecretA;
  options.ticket_rotation = absl::Hours(1);
  options.clock = [now] { return absl::FromUnixSeconds(now->load()); };
  std::unique_ptr<TlsServerContext> issuer = MakeContext(options);
  std::unique_ptr<TlsServerContext> other = MakeContext(options);

  ClientOptions first;
  first.sni = "b.localhost";
  first.min_version = first.max_version = GetParam();
  Outcome issued = Connect(*issuer, first);
  ASSERT_TRUE(issued.ok) << issued.error;
  ClientOptions again = first;
  again.session = issued.session;

  // Next epoch: the ticket's key is now "previous": still accepted, and
  // renewed.
  *now += 3600;
  Outcome next = Connect(*other, again);
  ASSERT_TRUE(next.ok) << next.error;
  EXPECT_TRUE(next.reused);
  EXPECT_EQ(other->counters().tickets_renewed.load(), 1u);

  // Two epochs later it is too old: full handshake.
  *now += 3600;
  Outcome stale = Connect(*other, again);
  ASSERT_TRUE(stale.ok) << stale.error;
  EXPECT_FALSE(stale.reused);
  EXPECT_EQ(other->counters().tickets_unknown_key.load(), 1u);

  // The ticket renewed in the previous epoch is current-minus-one now.
  ClientOptions renewed = first;
  renewed.session = next.session;
  Outcome resumed = Connect(*issuer, renewed);
  ASSERT_TRUE(resumed.ok) << resumed.error;
  EXPECT_TRUE(resumed.reused);

  for (Outcome* o : {&issued, &next, &stale, &resumed}) {
    SSL_SESSION_free(o->session);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, TicketTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_2_VERSION ? "Tls12"
                                                               : "Tls13";
                         });

void CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
}

TEST_F(TlsContextTest, ReloadSwapsCertificatesAndABadFileKeepsTheOld) {
  CertificateFiles live{TempPath("live.crt"), TempPath("live.key")};
  CertificateFiles next = MakeCertificate("next", {"next.localhost"});
  CopyFile(a_.cert_path, live.cert_path);
  CopyFile(a_.key_path, live.key_path);
  TlsOptions options;
  options.certificates = {live};
  std::unique_ptr<TlsServerContext> context = MakeContext(options);
  ClientOptions client;
  client.sni = "a.localhost";

  // A session created before the reload keeps the old configuration even
  // if its handshake happens after.
  std::unique_ptr<TlsSession> early = NewSession(*context);

  CopyFile(next.cert_path, live.cert_path);
  CopyFile(next.key_path, live.key_path);
  ASSERT_TRUE(context->Reload().ok());
  Outcome after = Connect(*context, client);
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_THAT(after.names, ElementsAre("next.localhost"));
  SSL_SESSION_free(after.session);
  {
    TestClient c(client);
    ASSERT_TRUE(Handshake(c, *early).ok());
    EXPECT_THAT(c.PeerDnsNames(), ElementsAre("a.localhost", "*.a.localhost"));
  }

  // A broken certificate file: the reload fails, naming it; nothing changes.
  {
    std::ofstream broken(live.cert_path, std::ios::trunc);
    broken << "not a certificate\n";
  }
  absl::Status status = context->Reload();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr(live.cert_path));
  Outcome still = Connect(*context, client);
  ASSERT_TRUE(still.ok) << still.error;
  EXPECT_THAT(still.names, ElementsAre("next.localhost"));
  SSL_SESSION_free(still.session);

  // A key that does not match: both files are named.
  CopyFile(next.cert_path, live.cert_path);
  CopyFile(b_.key_path, live.key_path);
  status = context->Reload();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(live.key_path));
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("does not match"));
  // A missing file.
  std::remove(live.key_path.c_str());
  status = context->Reload();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(live.key_path));
  EXPECT_EQ(context->counters().reloads.load(), 1u);
  EXPECT_EQ(context->counters().reload_failures.load(), 3u);
  still = Connect(*context, client);
  EXPECT_THAT(still.names, ElementsAre("next.localhost"));
  SSL_SESSION_free(still.session);
}

TEST_F(TlsContextTest, BadOptionsAreRefusedWithTheReason) {
  TlsOptions none;
  EXPECT_EQ(TlsServerContext::Create(none).status().code(),
            absl::StatusCode::kInvalidArgument);
  TlsOptions missing;
  missing.certificates = {{"/nonexistent/x.crt", "/nonexistent/x.key"}};
  absl::Status status = TlsServerContext::Create(missing).status();
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("/nonexistent/x.crt"));
  TlsOptions secret = Options();
  secret.ticket_secret_hex = "abcd";
  EXPECT_EQ(TlsServerContext::Create(secret).status().code(),
            absl::StatusCode::kInvalidArgument);
  secret.ticket_secret_hex = std::string(64, 'z');
  EXPECT_EQ(TlsServerContext::Create(secret).status().code(),
            absl::StatusCode::kInvalidArgument);
  TlsOptions alpn = Options();
  alpn.alpn_protocols = {""};
  EXPECT_EQ(TlsServerContext::Create(alpn).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tls
}  // namespace ddv
