// Capabilities travel as JSON between hosts: round trip, and rejection of every kind of bad field.
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "policy/capabilities.hpp"

namespace hymig {
namespace {

Capabilities sample() {
  return {.protocol_version = 1, .udp = true, .udp_gso = true, .udp_gro = false, .tcp = true,
          .rdma_ud = false, .rdma_rc = true, .rdma_software = true, .path_mtu = 9000, .link_speed_mbps = 25000, .host = "node-a"};
}

void expect_same(const Capabilities& a, const Capabilities& b) {
  EXPECT_EQ(a.protocol_version, b.protocol_version);
  EXPECT_EQ(a.udp, b.udp);
  EXPECT_EQ(a.udp_gso, b.udp_gso);
  EXPECT_EQ(a.udp_gro, b.udp_gro);
  EXPECT_EQ(a.tcp, b.tcp);
  EXPECT_EQ(a.rdma_ud, b.rdma_ud);
  EXPECT_EQ(a.rdma_rc, b.rdma_rc);
  EXPECT_EQ(a.rdma_software, b.rdma_software);
  EXPECT_EQ(a.path_mtu, b.path_mtu);
  EXPECT_EQ(a.link_speed_mbps, b.link_speed_mbps);
  EXPECT_EQ(a.host, b.host);
}

TEST(PolicyCapabilitiesJson, RoundTripsThroughText) {
  const Capabilities c = sample();
  expect_same(capabilities_from_json(nlohmann::json::parse(to_json(c).dump())), c);
  expect_same(capabilities_from_json(to_json(c)), c);  // signed integers, as built in C++
}

TEST(PolicyCapabilitiesJson, UnknownSpeedIsNull) {
  Capabilities c = sample();
  c.link_speed_mbps.reset();
  const nlohmann::json j = to_json(c);
  EXPECT_TRUE(j.at("link_speed_mbps").is_null());
  expect_same(capabilities_from_json(j), c);

  nlohmann::json absent = j;
  absent.erase("link_speed_mbps");
  EXPECT_FALSE(capabilities_from_json(absent).link_speed_mbps.has_value());
}

TEST(PolicyCapabilitiesJson, SoftwareRdmaAbsentMeansHardware) {
  nlohmann::json j = to_json(sample());
  j.erase("rdma_software");  // a peer from before the field
  EXPECT_FALSE(capabilities_from_json(j).rdma_software);
  j["rdma_software"] = "yes";
  EXPECT_THROW(capabilities_from_json(j), Error);
}

TEST(PolicyCapabilitiesJson, IgnoresUnknownFields) {
  nlohmann::json j = to_json(sample());
  j["rdma_dc"] = true;
  j["future"] = {{"nested", 1}};
  expect_same(capabilities_from_json(j), sample());
}

TEST(PolicyCapabilitiesJson, AcceptsRangeLimits) {
  nlohmann::json j = to_json(sample());
  j["path_mtu"] = 68;
  j["protocol_version"] = 1000;
  EXPECT_EQ(capabilities_from_json(j).path_mtu, 68u);
  j["path_mtu"] = 65536;
  EXPECT_EQ(capabilities_from_json(j).path_mtu, 65536u);
}

struct BadField {
  const char* name;
  const char* field;
  nlohmann::json value;  // discarded (field removed) when is_discarded()
};

class PolicyCapabilitiesReject : public ::testing::TestWithParam<BadField> {};

TEST_P(PolicyCapabilitiesReject, NamesTheField) {
  const BadField& bad = GetParam();
  nlohmann::json j = to_json(sample());
  if (bad.value.is_discarded()) j.erase(bad.field);
  else j[bad.field] = bad.value;
  try {
    capabilities_from_json(j);
    FAIL() << "accepted " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::protocol);
    EXPECT_NE(std::string(e.what()).find(std::string("'") + bad.field + "'"), std::string::npos) << e.what();
  }
}

const nlohmann::json kMissing = nlohmann::json::value_t::discarded;

// clang-format off
const BadField kBad[] = {
  {"version_zero", "protocol_version", 0},
  {"version_too_big", "protocol_version", 1001},
  {"version_negative", "protocol_version", -1},
  {"version_string", "protocol_version", "1"},
  {"version_float", "protocol_version", 1.5},
  {"version_missing", "protocol_version", kMissing},
  {"udp_string", "udp", "yes"},
  {"udp_number", "udp", 1},
  {"gso_null", "udp_gso", nullptr},
  {"gro_missing", "udp_gro", kMissing},
  {"tcp_missing", "tcp", kMissing},
  {"ud_number", "rdma_ud", 0},
  {"rc_array", "rdma_rc", nlohmann::json::array()},
  {"mtu_too_small", "path_mtu", 67},
  {"mtu_too_big", "path_mtu", 65537},
  {"mtu_negative", "path_mtu", -1500},
  {"mtu_huge", "path_mtu", 18446744073709551615ull},
  {"mtu_float", "path_mtu", 1500.0},
  {"mtu_missing", "path_mtu", kMissing},
  {"speed_negative", "link_speed_mbps", -1},
  {"speed_zero", "link_speed_mbps", 0},
  {"speed_string", "link_speed_mbps", "10G"},
  {"speed_absurd", "link_speed_mbps", 1000000000},
  {"host_number", "host", 7},
  {"host_too_long", "host", std::string(256, 'h')},
  {"host_missing", "host", kMissing},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Fields, PolicyCapabilitiesReject, ::testing::ValuesIn(kBad),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PolicyCapabilitiesJson, RejectsNonObjects) {
  for (const auto& j : {nlohmann::json::array(), nlohmann::json(nullptr), nlohmann::json("caps")}) {
    try {
      capabilities_from_json(j);
      FAIL() << "accepted " << j.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::protocol);
    }
  }
}

}  // namespace
}  // namespace hymig
