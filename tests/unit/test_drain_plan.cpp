// Placement for `hymig drain` (policy/drain_plan.hpp) and the capacity it reads
// (policy/host_capacity.hpp): what a target reports, how room is counted, and where each domain goes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "policy/drain_plan.hpp"
#include "policy/drain_request.hpp"
#include "policy/host_capacity.hpp"

namespace hymig {
namespace {

constexpr std::uint64_t GiB = 1ull << 30, MiB = 1ull << 20;

DrainTarget target(const std::string& address, std::uint64_t available, unsigned incoming = 0, unsigned max_incoming = 2) {
  HostCapacity c;
  c.memory_total = 64 * GiB;
  c.memory_available = available;
  c.max_image_bytes = 64 * GiB;
  c.max_incoming = max_incoming;
  c.incoming = incoming;
  c.libvirt = true;
  DrainTarget t;
  t.address = address;
  t.capacity = c;
  return t;
}

TEST(DrainPlan, LargestDomainsGoFirst) {
  std::vector<DrainDomain> d = {{"small", 1 * GiB, 0}, {"big", 8 * GiB, 0}, {"mid-b", 4 * GiB, 0}, {"mid-a", 4 * GiB, 0}};
  order_for_drain(d);
  EXPECT_EQ(d[0].name, "big");
  EXPECT_EQ(d[1].name, "mid-a");
  EXPECT_EQ(d[2].name, "mid-b");
  EXPECT_EQ(d[3].name, "small");
}

TEST(DrainPlan, TheTargetWithTheMostRoomIsChosenAndRoomIsCountedDown) {
  std::vector<DrainTarget> t = {target("a:1", 10 * GiB), target("b:1", 16 * GiB)};
  const DrainDomain d{"vm", 4 * GiB, 0};
  auto c = choose_target(d, t, {});
  ASSERT_TRUE(c.target);
  EXPECT_EQ(*c.target, 1u);
  place_on(t[1], d);
  place_on(t[1], d);  // b now has 16 - 8 = 8 GiB less its headroom: a (10) has more
  c = choose_target(d, t, {});
  ASSERT_TRUE(c.target);
  EXPECT_EQ(*c.target, 0u);
}

TEST(DrainPlan, NeverATargetWithoutRoom) {
  std::vector<DrainTarget> t = {target("a:1", 3 * GiB), target("b:1", 2 * GiB)};
  const auto c = choose_target({"vm", 4 * GiB, 0}, t, {});
  EXPECT_FALSE(c.target);
  EXPECT_FALSE(c.ever);
  EXPECT_NE(c.why.find("no target has room"), std::string::npos) << c.why;
  EXPECT_NE(c.why.find("a:1"), std::string::npos) << c.why;
}

TEST(DrainPlan, HeadroomAndIncomingMigrationsCountAgainstRoom) {
  std::vector<DrainTarget> t = {target("a:1", 5 * GiB)};
  t[0].headroom = 1 * GiB;
  EXPECT_TRUE(choose_target({"vm", 4 * GiB, 0}, t, {}).target);
  t[0].capacity->incoming_bytes = 512 * MiB;  // another source's migration on its way there
  EXPECT_FALSE(choose_target({"vm", 4 * GiB, 0}, t, {}).target);
}

TEST(DrainPlan, AFullTargetIsWaitedForNotGivenUp) {
  std::vector<DrainTarget> t = {target("a:1", 32 * GiB, 1, 2)};
  const DrainDomain d{"vm", 1 * GiB, 0};
  place_on(t[0], d);  // ours: 1 + 1 = 2 of 2 slots
  const auto c = choose_target(d, t, {});
  EXPECT_FALSE(c.target);
  EXPECT_TRUE(c.ever);
  moved_to(t[0]);
  EXPECT_TRUE(choose_target(d, t, {}).target);
}

TEST(DrainPlan, FailedTargetsUnreachableOnesAndNonLibvirtDaemonsAreSkipped) {
  std::vector<DrainTarget> t = {target("a:1", 32 * GiB), target("b:1", 16 * GiB), target("c:1", 64 * GiB),
                                target("d:1", 8 * GiB)};
  t[2].capacity.reset();
  t[2].unreachable = "connection refused";
  t[3].capacity->libvirt = false;
  const auto c = choose_target({"vm", 1 * GiB, 0}, t, {0});
  ASSERT_TRUE(c.target);
  EXPECT_EQ(*c.target, 1u);
  const auto none = choose_target({"vm", 1 * GiB, 0}, t, {0, 1});
  EXPECT_FALSE(none.target);
  EXPECT_NE(none.why.find("connection refused"), std::string::npos) << none.why;
  EXPECT_NE(none.why.find("serve --libvirt"), std::string::npos) << none.why;
}

TEST(DrainPlan, HugePageDomainsNeedFreeHugePagesOfTheirSize) {
  std::vector<DrainTarget> t = {target("a:1", 32 * GiB), target("b:1", 4 * GiB)};
  t[1].capacity->hugepages = {{2 * MiB, 4096, 2048}};  // 4 GiB free on 2 MiB pages
  const DrainDomain huge{"vm", 3 * GiB, 2 * MiB};
  auto c = choose_target(huge, t, {});
  ASSERT_TRUE(c.target);
  EXPECT_EQ(*c.target, 1u);  // a has more memory, but no huge pages
  place_on(t[1], huge);
  EXPECT_FALSE(choose_target(huge, t, {}).target);
  EXPECT_FALSE(choose_target({"vm", 3 * GiB, 1 * GiB}, t, {}).target);  // no 1 GiB pages anywhere
}

TEST(DrainPlan, RamFilesSpaceBoundsRoom) {
  std::vector<DrainTarget> t = {target("a:1", 32 * GiB)};
  t[0].capacity->ram_files_free = 2 * GiB;  // a small tmpfs for libvirt's memory_backing_dir
  EXPECT_FALSE(choose_target({"vm", 3 * GiB, 0}, t, {}).target);
  EXPECT_TRUE(choose_target({"vm", 1 * GiB, 0}, t, {}).target);
}

TEST(HostCapacity, ReadsMeminfoAndHugePagePools) {
  const auto root = std::filesystem::temp_directory_path() / ("hymig-capacity-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "proc");
  std::filesystem::create_directories(root / "sys/kernel/mm/hugepages/hugepages-2048kB");
  std::filesystem::create_directories(root / "sys/kernel/mm/hugepages/hugepages-1048576kB");
  std::ofstream(root / "proc/meminfo") << "MemTotal:       24683784 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n";
  std::ofstream(root / "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") << "512\n";
  std::ofstream(root / "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") << "100\n";
  std::ofstream(root / "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages") << "0\n";
  std::ofstream(root / "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages") << "0\n";
  const HostCapacity c = probe_host_memory(root / "proc", root / "sys");
  std::filesystem::remove_all(root);
  EXPECT_EQ(c.memory_total, 24683784ull * 1024);
  EXPECT_EQ(c.memory_available, 20000000ull * 1024);
  ASSERT_EQ(c.hugepages.size(), 2u);
  EXPECT_EQ(c.hugepages[0].page_bytes, 2 * MiB);
  EXPECT_EQ(c.hugepages[0].total, 512u);
  EXPECT_EQ(c.hugepages[0].free, 100u);
  EXPECT_EQ(c.hugepages[1].page_bytes, 1 * GiB);
}

TEST(HostCapacity, TravelsAsJsonAndHostileValuesAreRefused) {
  HostCapacity c = *target("a:1", 5 * GiB).capacity;
  c.hugepages = {{2 * MiB, 10, 3}};
  c.ram_files_free = 7 * GiB;
  const HostCapacity back = capacity_from_json(to_json(c));
  EXPECT_EQ(back.memory_available, c.memory_available);
  EXPECT_EQ(back.hugepages.size(), 1u);
  EXPECT_EQ(back.ram_files_free, c.ram_files_free);
  EXPECT_TRUE(back.libvirt);
  const auto refused = [](nlohmann::json j) { EXPECT_THROW(capacity_from_json(j), Error) << j.dump(); };
  nlohmann::json j = to_json(c);
  j["memory_available"] = -1;
  refused(j);
  j = to_json(c);
  j["memory_available"] = "lots";
  refused(j);
  j = to_json(c);
  j["hugepages"][0]["free"] = 11;  // more free than there are
  refused(j);
  j = to_json(c);
  j["hugepages"][0]["page_bytes"] = 0;
  refused(j);
  j = to_json(c);
  j.erase("libvirt");
  refused(j);
  j = to_json(c);
  j["max_incoming"] = 1u << 20;
  refused(j);
  refused(nlohmann::json::array());
}

}  // namespace
}  // namespace hymig

namespace hymig {
namespace {

// A drain request comes from a peer: only known keys, typed and bounded values, no value that
// would be read as an option or split into two.
TEST(DrainRequest, BecomesTheChildsCommandLineAndGarbageIsRefused) {
  const auto argv = drain_command_line("/usr/bin/hymig", "/etc/hymig/cluster.key", "qemu:///system",
                                       {{"targets", {"10.0.0.2:7470", "10.0.0.3:7470"}}, {"parallel", 2}, {"dry_run", true}});
  const std::vector<std::string> want = {"/usr/bin/hymig", "drain", "--report", "json", "--progress", "json", "--key-file",
                                         "/etc/hymig/cluster.key", "--connect", "qemu:///system", "--parallel", "2",
                                         "--dry-run", "--targets", "10.0.0.2:7470,10.0.0.3:7470"};
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin() + 10, v.end());  // the args' order is the JSON object's
    return v;
  };
  EXPECT_EQ(sorted(argv), sorted(want));
  const auto refused = [](const nlohmann::json& args) {
    EXPECT_THROW(drain_command_line("h", "k", "", args), Error) << args.dump();
  };
  refused(nlohmann::json::array());
  refused({{"parallel", 2}});                                       // no targets
  refused({{"targets", nlohmann::json::array()}});                  // none
  refused({{"targets", {"--connect=qemu+ssh://evil/system"}}});     // an option in disguise
  refused({{"targets", {"a:1,b:2"}}});                              // a list in one value
  refused({{"targets", {"a:1 --dry-run"}}});                        // two words
  refused({{"targets", {"a\n:1"}}});                                // not printable
  refused({{"targets", {1}}});                                      // not a string
  refused({{"targets", {"a:1"}}, {"parallel", 17}});                // out of range
  refused({{"targets", {"a:1"}}, {"parallel", "2"}});               // not a number
  refused({{"targets", {"a:1"}}, {"fallback", "ssh"}});             // not none or native
  refused({{"targets", {"a:1"}}, {"dry_run", "yes"}});              // not a boolean
  refused({{"targets", {"a:1"}}, {"connect", "qemu+ssh://evil"}});  // not a key a peer may give
  refused({{"targets", std::vector<std::string>(257, "a:1")}});
}

}  // namespace
}  // namespace hymig
