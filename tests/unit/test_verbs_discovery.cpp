// Device/port discovery: the pure conversions everywhere, and the "no RDMA here" answers on a host
// without devices (on a Soft-RoCE lab guest the same calls must find the rxe ports instead).
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/unit/test_verbs_lab.hpp"
#include "verbs/device_discovery.hpp"

namespace hymig::verbs {
namespace {

using test::env_or;

TEST(VerbsDiscovery, MtuEnumConversion) {
  EXPECT_EQ(mtu_enum_to_bytes(IBV_MTU_256), 256u);
  EXPECT_EQ(mtu_enum_to_bytes(IBV_MTU_512), 512u);
  EXPECT_EQ(mtu_enum_to_bytes(IBV_MTU_1024), 1024u);
  EXPECT_EQ(mtu_enum_to_bytes(IBV_MTU_2048), 2048u);
  EXPECT_EQ(mtu_enum_to_bytes(IBV_MTU_4096), 4096u);
  EXPECT_EQ(mtu_enum_to_bytes(0), 0u);
  EXPECT_EQ(mtu_enum_to_bytes(6), 0u);
  EXPECT_EQ(mtu_bytes_to_enum(1024), IBV_MTU_1024);
  EXPECT_EQ(mtu_bytes_to_enum(4096), IBV_MTU_4096);
  EXPECT_FALSE(mtu_bytes_to_enum(1500));
  EXPECT_FALSE(mtu_bytes_to_enum(0));
  for (int e = IBV_MTU_256; e <= IBV_MTU_4096; ++e) EXPECT_EQ(mtu_bytes_to_enum(mtu_enum_to_bytes(e)), e);
}

TEST(VerbsDiscovery, IpToGid) {
  const auto v4 = ip_to_gid("10.9.0.1");
  ASSERT_TRUE(v4);
  const std::array<std::uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 0, 1};
  EXPECT_EQ(*v4, want);
  EXPECT_EQ(gid_to_text(*v4), "::ffff:10.9.0.1");

  const auto v6 = ip_to_gid("[fd00::2]");
  ASSERT_TRUE(v6);
  EXPECT_EQ((*v6)[0], 0xfd);
  EXPECT_EQ((*v6)[15], 2);
  EXPECT_EQ(gid_to_text(*v6), "fd00::2");

  EXPECT_FALSE(ip_to_gid("node7"));
  EXPECT_FALSE(ip_to_gid("10.9.0.300"));
  EXPECT_FALSE(ip_to_gid(""));
}

TEST(VerbsDiscovery, GidFromText) {
  const std::array<std::uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x0a, 0x09, 0, 2};
  EXPECT_EQ(gid_from_text("0000:0000:0000:0000:0000:ffff:0a09:0002"), want);  // sysfs form
  EXPECT_EQ(gid_from_text("00000000000000000000ffff0a090002"), want);
  EXPECT_EQ(gid_from_text("::ffff:10.9.0.2"), want);
  EXPECT_FALSE(gid_from_text("0000:0000:0000:0000:0000:ffff:0a09"));  // 7 groups
  EXPECT_FALSE(gid_from_text("00000000000000000000ffff0a0900021"));
  EXPECT_FALSE(gid_from_text("zz::1"));
  EXPECT_FALSE(gid_from_text(""));
}

TEST(VerbsDiscovery, ListPortsNeverThrows) {
  std::vector<RdmaPortInfo> ports;
  ASSERT_NO_THROW(ports = list_ports());
  for (const RdmaPortInfo& p : ports) {
    EXPECT_FALSE(p.device.empty());
    EXPECT_GE(p.port, 1);
    if (p.active) {
      EXPECT_GE(p.active_mtu, 256u) << p.device;
    }
    if (!p.roce_v2_ipv4.empty()) {
      EXPECT_EQ(p.link_layer, "Ethernet") << p.device;
    }
  }
}

TEST(VerbsDiscovery, NoDeviceMeansNoPorts) {
  const std::string ip = env_or("HYMIG_LAB_IP_A", "10.9.0.1");
  if (!list_ports().empty()) GTEST_SKIP() << "this host has RDMA ports; the no-device answers are not observable";
  EXPECT_FALSE(find_roce_port(ip));
  EXPECT_FALSE(find_roce_gid(ip));
  EXPECT_FALSE(find_roce_port("127.0.0.1"));
}

TEST(VerbsDiscovery, NonNumericAddressIsNoPort) {
  EXPECT_FALSE(find_roce_port("not-an-address"));
  EXPECT_FALSE(find_roce_port(""));
}

TEST(VerbsDiscovery, FindsLabPorts) {
  const std::string a = env_or("HYMIG_LAB_IP_A", "10.9.0.1");
  const std::string b = env_or("HYMIG_LAB_IP_B", "10.9.0.2");
  const auto pa = find_roce_port(a);
  const auto pb = find_roce_port(b);
  if (!pa || !pb) GTEST_SKIP() << "no active RoCE port with an IPv4 GID (needs rdma_rxe; run in the Soft-RoCE lab)";
  EXPECT_TRUE(pa->active);
  EXPECT_EQ(pa->link_layer, "Ethernet");
  EXPECT_GE(pa->gid_index, 0);
  EXPECT_EQ(pa->gid, *ip_to_gid(a));
  EXPECT_TRUE(pa->active_mtu == 1024 || pa->active_mtu == 2048 || pa->active_mtu == 4096) << pa->active_mtu;
  EXPECT_NE(pa->device, pb->device);  // the lab puts rxe0 on one veth end and rxe1 on the other

  bool listed = false;
  for (const RdmaPortInfo& p : list_ports())
    if (p.device == pa->device && p.port == pa->port)
      for (const std::string& ip : p.roce_v2_ipv4) listed |= ip == a;
  EXPECT_TRUE(listed) << a << " missing from list_ports()";
}

}  // namespace
}  // namespace hymig::verbs
