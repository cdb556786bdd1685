// choose_plan: a table of (local caps, peer caps, preferences) -> (bulk, reliable, datagram size or
// error), then the rate, the reasons and the spellings.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "core/error.hpp"
#include "policy/plan.hpp"

namespace hymig {
namespace {

// Built by assignment: GCC 12 warns about designated initializers that skip members.
Capabilities udp_tcp(unsigned mtu = 1500) {
  Capabilities c;
  c.udp = c.tcp = true;
  c.path_mtu = mtu;
  return c;
}
Capabilities rdma(unsigned mtu = 4200) {
  Capabilities c = udp_tcp(mtu);
  c.rdma_ud = c.rdma_rc = true;
  return c;
}
Capabilities with(Capabilities c, bool Capabilities::*flag, bool value) {
  c.*flag = value;
  return c;
}
Preferences bulk(BulkTransport t) {
  Preferences p;
  p.bulk = t;
  return p;
}
Preferences reliable(ReliableTransport t) {
  Preferences p;
  p.reliable = t;
  return p;
}
Preferences both(BulkTransport b, ReliableTransport r) {
  Preferences p;
  p.bulk = b;
  p.reliable = r;
  return p;
}
Preferences rate(std::uint64_t bytes_per_s) {
  Preferences p;
  p.rate_bytes_per_s = bytes_per_s;
  return p;
}

struct Row {
  const char* name;
  Capabilities local;
  Capabilities peer;
  Preferences prefs;
  BulkTransport bulk = BulkTransport::udp;
  ReliableTransport reliable = ReliableTransport::tcp;
  std::size_t datagram_bytes = 0;
  std::optional<ErrorKind> error = std::nullopt;
  const char* message = "";  // a substring the error must contain
};

// clang-format off
const Row kRows[] = {
  {"ethernet_1500", udp_tcp(1500), udp_tcp(1500), {}, BulkTransport::udp, ReliableTransport::tcp, 1472},
  {"smaller_mtu_wins_local", udp_tcp(1500), udp_tcp(9000), {}, BulkTransport::udp, ReliableTransport::tcp, 1472},
  {"smaller_mtu_wins_peer", udp_tcp(9000), udp_tcp(1400), {}, BulkTransport::udp, ReliableTransport::tcp, 1372},
  {"jumbo", udp_tcp(9000), udp_tcp(9000), {}, BulkTransport::udp, ReliableTransport::tcp, 8972},
  {"loopback_capped", udp_tcp(65536), udp_tcp(65536), {}, BulkTransport::udp, ReliableTransport::tcp, 65507},
  {"minimum_576", udp_tcp(576), udp_tcp(576), {}, BulkTransport::udp, ReliableTransport::tcp, 548},
  {"below_576_raised", udp_tcp(300), udp_tcp(1500), {}, BulkTransport::udp, ReliableTransport::tcp, 548},
  {"rdma_both", rdma(4200), rdma(9000), {}, BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 4096},
  {"rdma_1500", rdma(1500), rdma(1500), {}, BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 1024},
  {"rdma_2200", rdma(2200), rdma(9000), {}, BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 2048},
  {"rdma_4195_too_small_for_4096", rdma(4195), rdma(9000), {}, BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 2048},
  {"rdma_tiny_path", rdma(600), rdma(600), {}, BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 256},
  {"rdma_local_only", rdma(9000), udp_tcp(9000), {}, BulkTransport::udp, ReliableTransport::tcp, 8972},
  // Software RoCE on either side: sockets first; RDMA only when asked for or when sockets are missing.
  {"soft_rdma_local", with(rdma(1500), &Capabilities::rdma_software, true), rdma(1500), {},
   BulkTransport::udp, ReliableTransport::tcp, 1472},
  {"soft_rdma_peer", rdma(1500), with(rdma(1500), &Capabilities::rdma_software, true), {},
   BulkTransport::udp, ReliableTransport::tcp, 1472},
  {"soft_rdma_forced", with(rdma(1500), &Capabilities::rdma_software, true),
   with(rdma(1500), &Capabilities::rdma_software, true), both(BulkTransport::rdma_ud, ReliableTransport::rdma_rc),
   BulkTransport::rdma_ud, ReliableTransport::rdma_rc, 1024},
  {"soft_rdma_no_udp", with(with(rdma(1500), &Capabilities::rdma_software, true), &Capabilities::udp, false),
   rdma(1500), {}, BulkTransport::rdma_ud, ReliableTransport::tcp, 1024},
  {"rdma_peer_only", udp_tcp(1500), rdma(1500), {}, BulkTransport::udp, ReliableTransport::tcp, 1472},
  {"ud_without_rc", with(rdma(), &Capabilities::rdma_rc, false), rdma(), {},
   BulkTransport::rdma_ud, ReliableTransport::tcp, 4096},
  {"rc_without_ud", rdma(1500), with(rdma(1500), &Capabilities::rdma_ud, false), {},
   BulkTransport::udp, ReliableTransport::rdma_rc, 1472},
  {"no_udp_on_peer", udp_tcp(), with(udp_tcp(), &Capabilities::udp, false), {},
   BulkTransport::tcp, ReliableTransport::tcp, 65507},
  {"no_udp_anywhere", with(udp_tcp(), &Capabilities::udp, false), with(udp_tcp(), &Capabilities::udp, false), {},
   BulkTransport::tcp, ReliableTransport::tcp, 65507},
  {"prefer_tcp_bulk", udp_tcp(), udp_tcp(), bulk(BulkTransport::tcp),
   BulkTransport::tcp, ReliableTransport::tcp, 65507},
  {"prefer_udp_over_rdma", rdma(9000), rdma(9000), bulk(BulkTransport::udp),
   BulkTransport::udp, ReliableTransport::rdma_rc, 8972},
  {"prefer_tcp_over_rc", rdma(), rdma(), reliable(ReliableTransport::tcp),
   BulkTransport::rdma_ud, ReliableTransport::tcp, 4096},
  {"prefer_ud_peer_lacks", rdma(), udp_tcp(), bulk(BulkTransport::rdma_ud),
   {}, {}, 0, ErrorKind::usage, "--bulk ud requested but the peer has no RDMA UD"},
  {"prefer_ud_host_lacks", udp_tcp(), rdma(), bulk(BulkTransport::rdma_ud),
   {}, {}, 0, ErrorKind::usage, "this host has no RDMA UD"},
  {"prefer_ud_nobody_has", udp_tcp(), udp_tcp(), bulk(BulkTransport::rdma_ud),
   {}, {}, 0, ErrorKind::usage, "neither this host nor the peer has RDMA UD"},
  {"prefer_udp_peer_lacks", udp_tcp(), with(udp_tcp(), &Capabilities::udp, false), bulk(BulkTransport::udp),
   {}, {}, 0, ErrorKind::usage, "--bulk udp requested but the peer has no UDP"},
  {"prefer_rc_peer_lacks", rdma(), udp_tcp(), reliable(ReliableTransport::rdma_rc),
   {}, {}, 0, ErrorKind::usage, "--reliable rc requested but the peer has no RDMA RC"},
  {"no_reliable_in_common", udp_tcp(), with(udp_tcp(), &Capabilities::tcp, false), {},
   {}, {}, 0, ErrorKind::protocol, "no reliable transport common"},
  {"no_bulk_in_common", with(udp_tcp(), &Capabilities::udp, false), with(udp_tcp(), &Capabilities::tcp, false), {},
   {}, {}, 0, ErrorKind::protocol, "no bulk transport common"},
  {"zero_rate", udp_tcp(), udp_tcp(), rate(0),
   {}, {}, 0, ErrorKind::usage, "--rate"},
};
// clang-format on

class PolicyPlanTable : public ::testing::TestWithParam<Row> {};

TEST_P(PolicyPlanTable, ChoosesOrRefuses) {
  const Row& row = GetParam();
  if (row.error) {
    try {
      choose_plan(row.local, row.peer, row.prefs);
      FAIL() << "expected an error containing '" << row.message << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), *row.error) << e.what();
      EXPECT_NE(std::string(e.what()).find(row.message), std::string::npos) << e.what();
    }
    return;
  }
  const Plan plan = choose_plan(row.local, row.peer, row.prefs);
  EXPECT_EQ(plan.bulk, row.bulk);
  EXPECT_EQ(plan.reliable, row.reliable);
  EXPECT_EQ(plan.datagram_bytes, row.datagram_bytes);
  EXPECT_EQ(plan.reasons.size(), 6u) << "one reason each for bulk, reliable, datagram size, rate, lanes and compression";
}

INSTANTIATE_TEST_SUITE_P(Rows, PolicyPlanTable, ::testing::ValuesIn(kRows),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PolicyPlan, RateFromUser) {
  Plan p = choose_plan(udp_tcp(), udp_tcp(), rate(123456));
  EXPECT_EQ(p.initial_rate_bytes_per_s, 123456u);
}

TEST(PolicyPlan, RateIsAnEighthOfTheSlowerLink) {
  Capabilities a = udp_tcp(), b = udp_tcp();
  a.link_speed_mbps = 25000;
  b.link_speed_mbps = 10000;
  // 10 Gbit/s = 1.25 GB/s; an eighth is 156.25 MB/s.
  EXPECT_EQ(choose_plan(a, b, {}).initial_rate_bytes_per_s, 156'250'000u);
  EXPECT_EQ(choose_plan(b, a, {}).initial_rate_bytes_per_s, 156'250'000u);
}

TEST(PolicyPlan, RateFromTheOnlyKnownSpeed) {
  Capabilities a = udp_tcp(), b = udp_tcp();
  b.link_speed_mbps = 100000;
  EXPECT_EQ(choose_plan(a, b, {}).initial_rate_bytes_per_s, 1'562'500'000u);
}

TEST(PolicyPlan, RateDefaultsTo100MBWhenNoSpeedIsKnown) {
  EXPECT_EQ(choose_plan(udp_tcp(), udp_tcp(), {}).initial_rate_bytes_per_s, 100'000'000u);
}

TEST(PolicyPlan, ReasonsNameTheDecisionAndWhatWasPassedOver) {
  Plan p = choose_plan(udp_tcp(1500), udp_tcp(9000), {});
  ASSERT_EQ(p.reasons.size(), 6u);
  EXPECT_EQ(p.reasons[0], "bulk=udp: both sides have UDP; neither this host nor the peer has RDMA UD");
  EXPECT_EQ(p.reasons[1].rfind("reliable=tcp: both sides have TCP", 0), 0u) << p.reasons[1];
  EXPECT_NE(p.reasons[2].find("datagram_bytes=1472"), std::string::npos) << p.reasons[2];
  EXPECT_NE(p.reasons[3].find("initial_rate=100000000"), std::string::npos) << p.reasons[3];

  p = choose_plan(udp_tcp(), rdma(), {});
  EXPECT_EQ(p.reasons[0], "bulk=udp: both sides have UDP; this host has no RDMA UD");
}

TEST(PolicyPlan, IsPure) {
  const Capabilities a = rdma(9000), b = udp_tcp(1500);
  const Plan p1 = choose_plan(a, b, {}), p2 = choose_plan(a, b, {});
  EXPECT_EQ(to_json(p1), to_json(p2));
}

TEST(PolicyPlan, ToJson) {
  Plan p = choose_plan(udp_tcp(9000), udp_tcp(9000), rate(5));
  nlohmann::json j = to_json(p);
  EXPECT_EQ(j.at("bulk"), "udp");
  EXPECT_EQ(j.at("reliable"), "tcp");
  EXPECT_EQ(j.at("datagram_bytes"), 8972);
  EXPECT_EQ(j.at("initial_rate_bytes_per_s"), 5);
  EXPECT_EQ(j.at("reasons").size(), 6u);
  EXPECT_EQ(j.at("lanes"), p.lanes);
  EXPECT_EQ(j.at("compression"), "off");
}

Capabilities cores(Capabilities c, unsigned n, std::optional<std::uint64_t> mbps = std::nullopt) {
  c.cores = n;
  c.link_speed_mbps = mbps;
  c.zstd = true;
  return c;
}

TEST(PolicyPlan, LanesFromTheSmallerSideOnAnUnknownLink) {
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), cores(udp_tcp(), 2), {}).lanes, 1u);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 8), cores(udp_tcp(), 4), {}).lanes, 2u);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 64), cores(udp_tcp(), 64), {}).lanes, 4u) << "at most 4 when the speed is unknown";
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 8), cores(udp_tcp(), 0), {}).lanes, 4u) << "an older peer: this side's cores";
}

TEST(PolicyPlan, LanesFromWhatTheLinkNeeds) {
  // 1 Gbit/s: one lane carries it; 25 Gbit/s needs 4 (3.1 GB/s at ~1 GB/s a lane); 100 needs more
  // than cores allow.
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 32, 1000), cores(udp_tcp(), 32, 1000), {}).lanes, 1u);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 32, 25000), cores(udp_tcp(), 32, 25000), {}).lanes, 4u);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 32, 100000), cores(udp_tcp(), 8, 100000), {}).lanes, 4u);
  const Plan p = choose_plan(cores(udp_tcp(), 64, 100000), cores(udp_tcp(), 64, 100000), {});
  EXPECT_EQ(p.lanes, kMaxAutoLanes);
  EXPECT_NE(p.reasons[4].find("lanes=8"), std::string::npos) << p.reasons[4];
}

TEST(PolicyPlan, LanesFromTheUserAndNoneForTcp) {
  Preferences prefs;
  prefs.lanes = 3;
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), cores(udp_tcp(), 2), prefs).lanes, 3u);
  prefs.lanes = 17;
  EXPECT_THROW(choose_plan(udp_tcp(), udp_tcp(), prefs), Error);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 16), cores(udp_tcp(), 16), bulk(BulkTransport::tcp)).lanes, 1u);
}

TEST(PolicyPlan, CompressionOnlyWhereBothSidesTakeIt) {
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), cores(udp_tcp(), 2), {}).compression, Compression::automatic);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), udp_tcp(), {}).compression, Compression::off) << "peer without zstd";
  Preferences on;
  on.compression = Compression::on;
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), cores(udp_tcp(), 2), on).compression, Compression::on);
  EXPECT_THROW(choose_plan(cores(udp_tcp(), 2), udp_tcp(), on), Error);
  Preferences tcp_on = bulk(BulkTransport::tcp);
  EXPECT_EQ(choose_plan(cores(udp_tcp(), 2), cores(udp_tcp(), 2), tcp_on).compression, Compression::off);
  EXPECT_EQ(parse_compression("auto"), Compression::automatic);
  EXPECT_THROW(parse_compression("yes"), Error);
}

TEST(PolicyPlan, RateFromTheLastSessionToThisPeer) {
  Preferences prefs;
  prefs.remembered = RememberedRate{900'000'000, 7200};
  Plan p = choose_plan(udp_tcp(), udp_tcp(), prefs);
  EXPECT_EQ(p.initial_rate_bytes_per_s, 900'000'000u);
  EXPECT_NE(p.reasons[3].find("last session to this peer"), std::string::npos) << p.reasons[3];
  EXPECT_NE(p.reasons[3].find("2 h ago"), std::string::npos) << p.reasons[3];
  // Never above the link: 1 Gbit/s is 125 MB/s.
  Capabilities slow = udp_tcp();
  slow.link_speed_mbps = 1000;
  EXPECT_EQ(choose_plan(slow, udp_tcp(), prefs).initial_rate_bytes_per_s, 125'000'000u);
  // --rate wins over memory.
  prefs.rate_bytes_per_s = 5'000'000;
  EXPECT_EQ(choose_plan(udp_tcp(), udp_tcp(), prefs).initial_rate_bytes_per_s, 5'000'000u);
}

TEST(PolicyPlan, TransportSpellingsRoundTrip) {
  for (auto t : {BulkTransport::udp, BulkTransport::tcp, BulkTransport::rdma_ud})
    EXPECT_EQ(parse_bulk_transport(to_string(t)), t);
  for (auto t : {ReliableTransport::tcp, ReliableTransport::rdma_rc})
    EXPECT_EQ(parse_reliable_transport(to_string(t)), t);
  EXPECT_EQ(to_string(BulkTransport::rdma_ud), "ud");
  EXPECT_EQ(to_string(ReliableTransport::rdma_rc), "rc");
}

TEST(PolicyPlan, ParseErrorsListValidValues) {
  try {
    parse_bulk_transport("rdma");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("udp, tcp, ud"), std::string::npos) << e.what();
  }
  try {
    parse_reliable_transport("udp");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("tcp, rc"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hymig
