// Parsing and printing of "HOST:PORT" text.
#include <gtest/gtest.h>

#include <netinet/in.h>

#include "core/error.hpp"
#include "core/socket_address.hpp"

namespace hymig {
namespace {

TEST(UdpSocketAddress, SplitsHostAndPort) {
  EXPECT_EQ(split_host_port("10.0.0.2:7000").host, "10.0.0.2");
  EXPECT_EQ(split_host_port("10.0.0.2:7000").port, "7000");
  EXPECT_EQ(split_host_port("[fe80::1%eth0]:0").host, "fe80::1%eth0");
  EXPECT_EQ(split_host_port("localhost:65535").port, "65535");
}

TEST(UdpSocketAddress, RejectsMalformedText) {
  for (const char* bad : {"", "x", "10.0.0.2", ":7000", "host:", "host:65536", "host:7x", "::1:7000", "[::1]7000",
                          "[::1]:", "[::1", "a:b:c", "host:-1", "host:123456"}) {
    try {
      split_host_port(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage);
      EXPECT_NE(std::string(e.what()).find("expected HOST:PORT"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(UdpSocketAddress, ResolvesAndFormatsBack) {
  const auto v4 = resolve_host_port("127.0.0.1:7000", SOCK_STREAM, false);
  ASSERT_EQ(v4.size(), 1u);
  EXPECT_EQ(format_address(v4[0]), "127.0.0.1:7000");
  EXPECT_EQ(numeric_host(v4[0]), "127.0.0.1");
  EXPECT_EQ(address_port(v4[0]), 7000);

  const auto v6 = resolve_host_port("[::1]:9", SOCK_DGRAM, false);
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(format_address(v6[0]), "[::1]:9");
  EXPECT_EQ(numeric_host(v6[0]), "::1");

  const auto local = resolve_host_port("localhost:0", SOCK_DGRAM, true);
  EXPECT_FALSE(local.empty());
}

TEST(UdpSocketAddress, MappedIpv4PrintsAsIpv4) {
  const auto mapped = resolve_host_port("[::ffff:10.1.2.3]:80", SOCK_STREAM, false);
  ASSERT_EQ(mapped.size(), 1u);
  EXPECT_EQ(mapped[0].family(), AF_INET6);
  EXPECT_EQ(format_address(mapped[0]), "10.1.2.3:80");
  EXPECT_EQ(numeric_host(mapped[0]), "10.1.2.3");
}

TEST(UdpSocketAddress, UnknownHostNamesTheText) {
  try {
    resolve_host_port("no-such-host.invalid:7000", SOCK_STREAM, false);
    FAIL();
  } catch (const Error& e) {
    // usage for "no such name"; io if the machine's resolver is unreachable (temporary failure)
    EXPECT_TRUE(e.kind() == ErrorKind::usage || e.kind() == ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("no-such-host.invalid:7000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hymig
