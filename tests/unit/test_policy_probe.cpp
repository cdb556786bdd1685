// The probes against this machine's loopback, which every test host has.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.hpp"
#include "policy/capabilities.hpp"
#include "policy/link_probe.hpp"

namespace hymig {
namespace {

const LinkInfo* find_link(const std::vector<LinkInfo>& links, const std::string& name) {
  auto it = std::find_if(links.begin(), links.end(), [&](const LinkInfo& l) { return l.name == name; });
  return it == links.end() ? nullptr : &*it;
}

bool has_ipv6_loopback() {
  const auto links = probe_links();
  const LinkInfo* lo = find_link(links, "lo");
  return lo && std::find(lo->addresses.begin(), lo->addresses.end(), "::1") != lo->addresses.end();
}

TEST(PolicyProbeLinks, FindsLoopback) {
  const auto links = probe_links();
  const LinkInfo* lo = find_link(links, "lo");
  ASSERT_NE(lo, nullptr);
  EXPECT_EQ(lo->mtu, 65536u);
  EXPECT_TRUE(lo->loopback);
  EXPECT_TRUE(lo->up);
  EXPECT_FALSE(lo->speed_mbps.has_value()) << "loopback has no link speed";
  EXPECT_NE(std::find(lo->addresses.begin(), lo->addresses.end(), "127.0.0.1"), lo->addresses.end());
  EXPECT_TRUE(std::is_sorted(links.begin(), links.end(),
                             [](const LinkInfo& a, const LinkInfo& b) { return a.name < b.name; }));
}

TEST(PolicyProbePath, Ipv4Loopback) {
  const PathInfo p = probe_path("127.0.0.1");
  // The route MTU the kernel reports (IP_MTU) is capped at 65535 though lo's link MTU is 65536.
  EXPECT_GE(p.mtu, 65535u);
  EXPECT_LE(p.mtu, 65536u);
  EXPECT_TRUE(p.loopback);
  EXPECT_EQ(p.interface, "lo");
  EXPECT_EQ(p.local_address, "127.0.0.1");
}

TEST(PolicyProbePath, Ipv6Loopback) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no ::1 on lo here";
  for (const char* host : {"::1", "[::1]"}) {
    const PathInfo p = probe_path(host);
    EXPECT_EQ(p.mtu, 65536u) << host;
    EXPECT_TRUE(p.loopback) << host;
    EXPECT_EQ(p.interface, "lo") << host;
    EXPECT_EQ(p.local_address, "::1") << host;
  }
}

TEST(PolicyProbePath, OwnNonLoopbackAddressGoesOverLoopback) {
  for (const LinkInfo& l : probe_links()) {
    if (l.loopback || !l.up) continue;
    for (const std::string& a : l.addresses) {
      if (a.find(':') != std::string::npos) continue;  // IPv4 keeps this simple
      const PathInfo p = probe_path(a);
      EXPECT_TRUE(p.loopback) << a;
      EXPECT_EQ(p.local_address, a);
      return;
    }
  }
  GTEST_SKIP() << "no up non-loopback IPv4 link here";
}

TEST(PolicyProbePath, RejectsEmptyAndUnresolvable) {
  EXPECT_THROW(probe_path(""), Error);
  EXPECT_THROW(probe_path("no-such-host.invalid"), Error);
}

TEST(PolicyProbeCapabilities, Local) {
  const Capabilities c = probe_capabilities(std::nullopt);
  EXPECT_EQ(c.protocol_version, kProtocolVersion);
  EXPECT_TRUE(c.udp);
  EXPECT_TRUE(c.tcp);
  EXPECT_FALSE(c.rdma_ud);
  EXPECT_FALSE(c.rdma_rc);
  EXPECT_GE(c.path_mtu, 68u);
  EXPECT_LE(c.path_mtu, 65536u);
  EXPECT_FALSE(c.host.empty());
  // What we send must be what we accept.
  EXPECT_NO_THROW(capabilities_from_json(to_json(c)));
}

TEST(PolicyProbeCapabilities, TowardLoopbackPeer) {
  const Capabilities c = probe_capabilities(std::string("127.0.0.1"));
  EXPECT_GE(c.path_mtu, 65535u);
  EXPECT_FALSE(c.link_speed_mbps.has_value());
}

}  // namespace
}  // namespace hymig
