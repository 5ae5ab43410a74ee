// ToServerInfo: what the master's handoff says about a connection, as the
// server takes it. The link itself runs end to end in
// ddv_hello_worker_test against a fake master.
#include "src/hello/master_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "gtest/gtest.h"

namespace ddv {
namespace hello {
namespace {

worker::WorkerIdentity Identity() {
  worker::WorkerIdentity identity;
  identity.site = "blog";
  identity.worker_index = 3;
  return identity;
}

TEST(ToServerInfoTest, HttpConnection) {
  worker::ConnectionInfo in;
  in.site = "shop";
  in.host = "shop.example";
  in.alpn = {"h2", "http/1.1"};
  auto* sin = reinterpret_cast<sockaddr_in*>(&in.peer);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(4242);
  ASSERT_EQ(inet_pton(AF_INET, "203.0.113.7", &sin->sin_addr), 1);
  in.peer_length = sizeof(sockaddr_in);
  in.skip_bytes = 40;
  ConnectionInfo out = ToServerInfo(Identity(), in);
  EXPECT_EQ(out.site_id, "shop");
  EXPECT_EQ(out.worker_index, 3);
  EXPECT_EQ(out.host, "shop.example");
  EXPECT_FALSE(out.tls);
  EXPECT_EQ(out.sni, "") << "Host is not SNI";
  EXPECT_EQ(out.alpn, "h2,http/1.1");
  EXPECT_EQ(out.peer, "203.0.113.7:4242");
  EXPECT_EQ(out.skip_bytes, 40u);
}

TEST(ToServerInfoTest, TlsConnectionRoutedOnSniWithNoPeerKnown) {
  worker::ConnectionInfo in;
  in.tls = true;
  in.host = "t.example";
  ConnectionInfo out = ToServerInfo(Identity(), in);
  EXPECT_EQ(out.site_id, "blog") << "the worker's own site when unset";
  EXPECT_TRUE(out.tls);
  EXPECT_EQ(out.sni, "t.example");
  EXPECT_EQ(out.alpn, "");
  EXPECT_EQ(out.peer, "") << "empty: the server asks getpeername()";
}

}  // namespace
}  // namespace hello
}  // namespace ddv
