#include "policy/plan.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/error.hpp"

namespace hymig {
namespace {

constexpr std::size_t kIpv4UdpHeaders = 28;       // 20 IPv4 + 8 UDP
constexpr std::size_t kMaxUdpPayload = 65507;     // 65535 - kIpv4UdpHeaders
constexpr std::size_t kMinUdpPayload = 576 - 28;  // every IPv4 host must accept a 576-byte datagram
constexpr std::size_t kRoceHeaders = 100;         // Eth + IP + UDP + BTH + DETH + ICRC, rounded up
constexpr std::array<std::size_t, 5> kRoceMtus = {4096, 2048, 1024, 512, 256};
constexpr std::uint64_t kDefaultRate = 100'000'000;  // 100 MB/s when no link speed is known

// ---- the transports: one row each, for names, flags and the capability that offers them ----

template <class T>
struct TransportRow {
  T value;
  std::string_view flag;       // as typed and printed: --bulk udp
  std::string_view long_name;  // in reasons: "both sides have RDMA UD"
  bool Capabilities::*offered;
};

constexpr std::array<TransportRow<BulkTransport>, 3> kBulkRows{{
    {BulkTransport::udp, "udp", "UDP", &Capabilities::udp},
    {BulkTransport::tcp, "tcp", "TCP", &Capabilities::tcp},
    {BulkTransport::rdma_ud, "ud", "RDMA UD", &Capabilities::rdma_ud},
}};
constexpr std::array<TransportRow<ReliableTransport>, 2> kReliableRows{{
    {ReliableTransport::tcp, "tcp", "TCP", &Capabilities::tcp},
    {ReliableTransport::rdma_rc, "rc", "RDMA RC", &Capabilities::rdma_rc},
}};

template <class T, std::size_t N>
const TransportRow<T>& row_of(const std::array<TransportRow<T>, N>& rows, T t) {
  for (const auto& r : rows)
    if (r.value == t) return r;
  return rows.front();  // unreachable: every enumerator has a row
}
const TransportRow<BulkTransport>& row(BulkTransport t) { return row_of(kBulkRows, t); }
const TransportRow<ReliableTransport>& row(ReliableTransport t) { return row_of(kReliableRows, t); }

template <class T, std::size_t N>
T parse_row(const std::array<TransportRow<T>, N>& rows, std::string_view s, const char* what) {
  std::string valid;
  for (const auto& r : rows) {
    if (r.flag == s) return r.value;
    valid += (valid.empty() ? "" : ", ") + std::string(r.flag);
  }
  throw Error(ErrorKind::usage, fmt::format("unknown {} transport '{}'; valid values: {}", what, s, valid));
}

// ---- which side has what: a decision names the side that lacks a transport ----

template <class T>
bool has(const Capabilities& c, T t) { return c.*(row(t).offered); }

template <class T>
std::string_view long_name(T t) { return row(t).long_name; }

// "" when both sides have it, else who lacks it: "this host has no RDMA UD".
template <typename T>
std::string missing(const Capabilities& local, const Capabilities& peer, T t) {
  const bool l = has(local, t), p = has(peer, t);
  if (l && p) return {};
  if (!l && !p) return fmt::format("neither this host nor the peer has {}", long_name(t));
  return fmt::format("{} has no {}", l ? "the peer" : "this host", long_name(t));
}

template <typename T>
T choose(const Capabilities& local, const Capabilities& peer, std::optional<T> wanted,
         const std::vector<T>& by_preference, std::string_view flag, std::string_view what,
         std::vector<std::string>& reasons) {
  if (wanted) {
    std::string lack = missing(local, peer, *wanted);
    if (!lack.empty())
      throw Error(ErrorKind::usage, fmt::format("{} {} requested but {}; drop {} to let hymig choose", flag,
                                                to_string(*wanted), lack, flag));
    reasons.push_back(fmt::format("{}={}: requested with {} and both sides have {}", what, to_string(*wanted), flag,
                                  long_name(*wanted)));
    return *wanted;
  }
  std::vector<std::string> passed_over;
  for (T t : by_preference) {
    std::string lack = missing(local, peer, t);
    if (lack.empty()) {
      std::string reason = fmt::format("{}={}: both sides have {}", what, to_string(t), long_name(t));
      for (const auto& why : passed_over) reason += "; " + why;
      reasons.push_back(std::move(reason));
      return t;
    }
    passed_over.push_back(std::move(lack));
  }
  std::string why;
  for (const auto& w : passed_over) why += (why.empty() ? "" : "; ") + w;
  throw Error(ErrorKind::protocol,
              fmt::format("no {} transport common to this host and the peer ({}); install or enable one on both sides",
                          what, why));
}

std::size_t choose_datagram_bytes(BulkTransport bulk, const Capabilities& local, const Capabilities& peer,
                                  std::vector<std::string>& reasons) {
  const std::size_t mtu = std::min(local.path_mtu, peer.path_mtu);
  const std::string mtu_from =
      fmt::format("path MTU {} (this host {}, peer {})", mtu, local.path_mtu, peer.path_mtu);
  switch (bulk) {
    case BulkTransport::tcp:
      reasons.push_back(fmt::format("datagram_bytes={}: TCP is a byte stream the kernel segments itself, so "
                                    "bulk chunks take the largest size",
                                    kMaxUdpPayload));
      return kMaxUdpPayload;
    case BulkTransport::rdma_ud: {
      const std::size_t room = mtu > kRoceHeaders ? mtu - kRoceHeaders : 0;
      auto it = std::find_if(kRoceMtus.begin(), kRoceMtus.end(), [&](std::size_t m) { return m <= room; });
      const std::size_t roce = it != kRoceMtus.end() ? *it : kRoceMtus.back();
      reasons.push_back(fmt::format("datagram_bytes={}: the largest RoCE MTU that fits {} minus ~{} bytes of "
                                    "RoCE headers",
                                    roce, mtu_from, kRoceHeaders));
      return roce;
    }
    case BulkTransport::udp: {
      const std::size_t raw = mtu > kIpv4UdpHeaders ? mtu - kIpv4UdpHeaders : 0;
      const std::size_t bytes = std::clamp(raw, kMinUdpPayload, kMaxUdpPayload);
      std::string reason = fmt::format("datagram_bytes={}: {} minus {} bytes of IPv4 and UDP headers", bytes,
                                       mtu_from, kIpv4UdpHeaders);
      if (raw > kMaxUdpPayload) reason += fmt::format(", capped at {}, the largest IPv4 UDP payload", kMaxUdpPayload);
      if (raw < kMinUdpPayload)
        reason += fmt::format(", raised to {}: every IPv4 host accepts a 576-byte datagram", kMinUdpPayload);
      reasons.push_back(std::move(reason));
      return bytes;
    }
  }
  return kMinUdpPayload;
}

// A speed of 0 is as good as unknown.
bool speed_known(const Capabilities& c) { return c.link_speed_mbps && *c.link_speed_mbps > 0; }

std::optional<std::uint64_t> slower_link_mbps(const Capabilities& local, const Capabilities& peer) {
  if (speed_known(local) && speed_known(peer)) return std::min(*local.link_speed_mbps, *peer.link_speed_mbps);
  if (speed_known(local)) return *local.link_speed_mbps;
  if (speed_known(peer)) return *peer.link_speed_mbps;
  return std::nullopt;
}

std::string age_text(double s) {
  if (s < 120) return fmt::format("{:.0f} s ago", s);
  if (s < 7200) return fmt::format("{:.0f} min ago", s / 60);
  if (s < 172800) return fmt::format("{:.0f} h ago", s / 3600);
  return fmt::format("{:.0f} days ago", s / 86400);
}

std::uint64_t choose_rate(const Capabilities& local, const Capabilities& peer, const Preferences& prefs,
                          std::vector<std::string>& reasons) {
  if (prefs.rate_bytes_per_s) {
    if (*prefs.rate_bytes_per_s == 0)
      throw Error(ErrorKind::usage, "--rate 0 would never send anything; give a positive rate or drop --rate");
    reasons.push_back(fmt::format("initial_rate={} B/s: set with --rate", *prefs.rate_bytes_per_s));
    return *prefs.rate_bytes_per_s;
  }
  if (prefs.remembered && prefs.remembered->bytes_per_s > 0) {
    // What this path carried last time is a better start than any fraction of a nominal speed:
    // the pacer is at the receiver's capacity from the first report instead of climbing to it.
    std::uint64_t rate = prefs.remembered->bytes_per_s;
    std::string capped;
    if (const auto mbps = slower_link_mbps(local, peer); mbps && rate > *mbps * 125'000) {
      rate = *mbps * 125'000;
      capped = fmt::format(", capped at the link's {} Mbit/s", *mbps);
    }
    reasons.push_back(fmt::format("initial_rate={} B/s: what the last session to this peer carried ({}){}; the "
                                  "pacer adapts from there",
                                  rate, age_text(prefs.remembered->age_s), capped));
    return rate;
  }
  auto known = speed_known;
  if (!known(local) && !known(peer)) {
    reasons.push_back(fmt::format("initial_rate={} B/s: neither side knows its link speed (virtual link), so start "
                                  "at 100 MB/s; the pacer adapts from there",
                                  kDefaultRate));
    return kDefaultRate;
  }
  std::uint64_t mbps = 0;
  std::string whose;
  if (known(local) && known(peer)) {
    mbps = std::min(*local.link_speed_mbps, *peer.link_speed_mbps);
    whose = fmt::format("the slower link ({} Mbit/s; this host {}, peer {})", mbps, *local.link_speed_mbps,
                        *peer.link_speed_mbps);
  } else {
    mbps = known(local) ? *local.link_speed_mbps : *peer.link_speed_mbps;
    whose = fmt::format("the only known link speed ({} Mbit/s, {})", mbps, known(local) ? "this host" : "the peer");
  }
  // Mbit/s -> bytes/s is * 125'000; start at an eighth of it and let the pacer climb.
  const std::uint64_t rate = std::max<std::uint64_t>(1, mbps * 125'000 / 8);
  reasons.push_back(fmt::format("initial_rate={} B/s: 1/8 of {}; the pacer adapts from there", rate, whose));
  return rate;
}

std::uint32_t choose_lanes(BulkTransport bulk, const Capabilities& local, const Capabilities& peer,
                           const Preferences& prefs, std::vector<std::string>& reasons) {
  if (bulk == BulkTransport::tcp) {
    reasons.push_back("lanes=1: the pages go over the reliable channel, there are no datagram lanes");
    return 1;
  }
  if (prefs.lanes) {
    if (*prefs.lanes < 1 || *prefs.lanes > kMaxLanes)
      throw Error(ErrorKind::usage, fmt::format("--lanes must be 1..{}", kMaxLanes));
    reasons.push_back(fmt::format("lanes={}: set with --lanes", *prefs.lanes));
    return *prefs.lanes;
  }
  // A lane is a thread on each side: half the cores of the smaller side leaves the other half to
  // the guest, the pacer and the kernel's own network work.
  const unsigned cores = peer.cores ? std::min(local.cores, peer.cores) : local.cores;
  const std::uint32_t by_cores = std::clamp<std::uint32_t>(std::max(1u, cores) / 2, 1, kMaxAutoLanes);
  const auto mbps = slower_link_mbps(local, peer);
  if (!mbps) {
    const std::uint32_t n = std::min<std::uint32_t>(by_cores, 4);
    reasons.push_back(fmt::format("lanes={}: half of {} cores (the smaller side), at most 4 on a link of unknown speed",
                                  n, cores));
    return n;
  }
  const std::uint64_t link_bytes = *mbps * 125'000;
  const auto needed = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(kMaxAutoLanes, (link_bytes + kLaneBytesPerSecond - 1) / kLaneBytesPerSecond));
  const std::uint32_t n = std::clamp<std::uint32_t>(std::min(needed, by_cores), 1, kMaxAutoLanes);
  reasons.push_back(fmt::format("lanes={}: a {} Mbit/s link needs {} at ~{} MB/s a lane; half of {} cores (the "
                                "smaller side) allows {}",
                                n, *mbps, needed, kLaneBytesPerSecond / 1'000'000, cores, by_cores));
  return n;
}

Compression choose_compression(BulkTransport bulk, const Capabilities& local, const Capabilities& peer,
                               const Preferences& prefs, std::vector<std::string>& reasons) {
  if (prefs.compression == Compression::off) {
    reasons.push_back("compression=off: set with --compress off");
    return Compression::off;
  }
  if (bulk == BulkTransport::tcp) {
    reasons.push_back("compression=off: only datagram pages are compressed");
    return Compression::off;
  }
  if (!local.zstd || !peer.zstd) {
    if (prefs.compression == Compression::on)
      throw Error(ErrorKind::usage, fmt::format("--compress on: {} cannot take zstd-compressed pages",
                                                local.zstd ? "the peer" : "this host"));
    reasons.push_back("compression=off: the peer does not take zstd-compressed pages");
    return Compression::off;
  }
  if (prefs.compression == Compression::on) {
    reasons.push_back("compression=on: set with --compress on (every page zstd makes smaller by a quarter)");
    return Compression::on;
  }
  reasons.push_back("compression=auto: zstd where the measured ratio and CPU cost say it moves pages faster");
  return Compression::automatic;
}

}  // namespace

std::string_view to_string(BulkTransport t) { return row(t).flag; }
std::string_view to_string(ReliableTransport t) { return row(t).flag; }

BulkTransport parse_bulk_transport(std::string_view s) { return parse_row(kBulkRows, s, "bulk"); }
ReliableTransport parse_reliable_transport(std::string_view s) { return parse_row(kReliableRows, s, "reliable"); }

Plan choose_plan(const Capabilities& local, const Capabilities& peer, const Preferences& prefs) {
  Plan plan;
  // Software RoCE (rdma_rxe, siw) runs the RDMA protocol on the CPU, on top of the same kernel
  // network stack: no offload, and slower than plain UDP/TCP (in the Soft-RoCE lab UD+RC migrates at
  // a fifth of UDP+TCP). Hardware RDMA comes first; software RDMA only where sockets are missing.
  const bool soft = (local.rdma_software && has(local, BulkTransport::rdma_ud)) ||
                    (peer.rdma_software && has(peer, BulkTransport::rdma_ud));
  const std::vector<BulkTransport> bulk_order =
      soft ? std::vector{BulkTransport::udp, BulkTransport::rdma_ud, BulkTransport::tcp}
           : std::vector{BulkTransport::rdma_ud, BulkTransport::udp, BulkTransport::tcp};
  const std::vector<ReliableTransport> reliable_order =
      soft ? std::vector{ReliableTransport::tcp, ReliableTransport::rdma_rc}
           : std::vector{ReliableTransport::rdma_rc, ReliableTransport::tcp};
  plan.bulk = choose<BulkTransport>(local, peer, prefs.bulk, bulk_order, "--bulk", "bulk", plan.reasons);
  plan.reliable = choose<ReliableTransport>(local, peer, prefs.reliable, reliable_order, "--reliable", "reliable",
                                            plan.reasons);
  if (soft) {
    // Said in the decisions it changed: one reason per decision stays true.
    const std::string note = fmt::format(
        "; RDMA on {} is software RoCE (no offload, slower than the kernel's UDP/TCP), so sockets come first "
        "(--bulk ud --reliable rc forces RDMA)",
        local.rdma_software && peer.rdma_software ? "both sides" : local.rdma_software ? "this host" : "the peer");
    if (!prefs.bulk) plan.reasons[0] += note;
    if (!prefs.reliable) plan.reasons[1] += note;
  }
  plan.datagram_bytes = choose_datagram_bytes(plan.bulk, local, peer, plan.reasons);
  plan.initial_rate_bytes_per_s = choose_rate(local, peer, prefs, plan.reasons);
  plan.lanes = choose_lanes(plan.bulk, local, peer, prefs, plan.reasons);
  plan.compression = choose_compression(plan.bulk, local, peer, prefs, plan.reasons);
  return plan;
}

nlohmann::json to_json(const Plan& plan) {
  return {
      {"bulk", to_string(plan.bulk)},
      {"reliable", to_string(plan.reliable)},
      {"datagram_bytes", plan.datagram_bytes},
      {"initial_rate_bytes_per_s", plan.initial_rate_bytes_per_s},
      {"lanes", plan.lanes},
      {"compression", to_string(plan.compression)},
      {"reasons", plan.reasons},
  };
}

}  // namespace hymig
