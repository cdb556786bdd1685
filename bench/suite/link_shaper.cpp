#include "bench/suite/link_shaper.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/suite/child_process.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace hymig::bench {
namespace {

constexpr auto kToolTimeout = std::chrono::milliseconds(10000);
constexpr const char* kTable = "hymig_bench_loss";

void must(const CommandResult& r, const std::string& what) {
  if (!r.status.ok()) throw Error(ErrorKind::io, what + " failed (" + r.status.describe() + "): " + r.err);
}

}  // namespace

LinkShaper::~LinkShaper() {
  try {
    if (loss_) set_loss(0);
    if (!rate_device_.empty()) set_rate(rate_device_, "off");
  } catch (...) {
    // Best effort: the namespaces these rules live in are deleted by the script that made them.
  }
}

void LinkShaper::set_loss(unsigned pct) {
  if (pct > 100) throw Error(ErrorKind::usage, fmt::format("loss {} % is not a percentage", pct));
  run_command({"nft", "delete", "table", "inet", kTable}, "", kToolTimeout);  // absent is fine
  loss_ = 0;
  if (pct == 0) return;
  // "mod 100 < N" wants N below 100; 100 % is a plain drop. nft 1.0.6 wants the closing braces
  // on lines of their own.
  const std::string match = pct == 100 ? "" : fmt::format("numgen random mod 100 < {} ", pct);
  const std::string rules = fmt::format(
      "table inet {} {{\n"
      "chain in {{\n"
      "type filter hook input priority 0;\n"
      "iifname != \"lo\" meta l4proto {{ udp, tcp }} {}counter drop\n"
      "}}\n"
      "}}\n",
      kTable, match);
  must(run_command({"nft", "-f", "-"}, rules, kToolTimeout), fmt::format("nft (random loss of {} %)", pct));
  loss_ = pct;
}

std::uint64_t LinkShaper::dropped() const {
  if (!loss_) return 0;
  const auto r = run_command({"nft", "-j", "list", "table", "inet", kTable}, "", kToolTimeout);
  if (!r.status.ok()) return 0;
  std::uint64_t n = 0;
  try {
    for (const auto& item : nlohmann::json::parse(r.out).at("nftables"))
      if (item.contains("rule"))
        for (const auto& e : item["rule"]["expr"])
          if (e.contains("counter")) n += e["counter"]["packets"].get<std::uint64_t>();
  } catch (const std::exception&) {
  }
  return n;
}

void LinkShaper::set_rate(const std::string& device, const std::string& rate) {
  run_command({"tc", "qdisc", "del", "dev", device, "root"}, "", kToolTimeout);  // absent is fine
  rate_device_.clear();
  if (rate == "off") return;
  // A burst well above one 64 KB GSO segment; latency bounds the queue (rate x 50 ms).
  must(run_command({"tc", "qdisc", "add", "dev", device, "root", "tbf", "rate", rate, "burst", "256kb", "latency",
                    "50ms"},
                   "", kToolTimeout),
       "tc tbf rate " + rate + " on " + device);
  rate_device_ = device;
}

void enter_network_namespace(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open network namespace " + path + " (made by `ip netns add " + name + "`?)");
  if (::setns(fd.get(), CLONE_NEWNET) != 0) throw_errno("setns into network namespace " + name + " (needs root)");
}

}  // namespace hymig::bench
