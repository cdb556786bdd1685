// The migration plan: which transports carry the bulk stream and the control channel, how big a
// datagram is and how fast to start. A pure function of both sides' capabilities and the user's
// preferences, so that it is testable without a network and explainable (one reason per decision).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/capabilities.hpp"
#include "protocol/page_compressor.hpp"  // Compression
#include "transport/transport_kind.hpp"

namespace hymig {

// Command-line spellings: "udp", "tcp", "ud" and "tcp", "rc".
std::string_view to_string(BulkTransport t);
std::string_view to_string(ReliableTransport t);
// Throw Error{usage} listing the valid values.
BulkTransport parse_bulk_transport(std::string_view s);
ReliableTransport parse_reliable_transport(std::string_view s);

// What an earlier session to the same peer carried (policy/rate_memory.hpp).
struct RememberedRate {
  std::uint64_t bytes_per_s = 0;
  double age_s = 0;
};

struct Preferences {
  std::optional<BulkTransport> bulk;
  std::optional<ReliableTransport> reliable;
  std::optional<std::uint64_t> rate_bytes_per_s;
  std::optional<std::uint32_t> lanes;
  Compression compression = Compression::automatic;
  std::optional<RememberedRate> remembered;  // for the same peer, bulk transport and lanes
};

struct Plan {
  BulkTransport bulk = BulkTransport::tcp;
  ReliableTransport reliable = ReliableTransport::tcp;
  std::size_t datagram_bytes = 0;  // largest bulk message payload (UDP payload, or RoCE MTU for UD)
  std::uint64_t initial_rate_bytes_per_s = 0;  // where the pacer starts; it adapts from reports
  std::uint32_t lanes = 1;                     // datagram lanes (1 with --bulk tcp, where there are none)
  Compression compression = Compression::off;
  std::vector<std::string> reasons;            // one human sentence per decision
};

// Throws Error{usage} when a preference cannot be met (naming the side that lacks it),
// Error{protocol} when the two sides share no transport at all.
Plan choose_plan(const Capabilities& local, const Capabilities& peer, const Preferences& prefs);
// (The rate memory is kept per peer, bulk transport and lane count: a caller plans once without
// `remembered`, looks the rate up for that plan's bulk and lanes, and plans again with it.)

inline constexpr std::uint32_t kMaxAutoLanes = 8;
// What one lane carries on one core (seal or open with AES-GCM, the copy, the system calls): the
// link speed divided by it is how many lanes a fast link needs (docs/performance.md, "Lanes").
inline constexpr std::uint64_t kLaneBytesPerSecond = 1'000'000'000;

nlohmann::json to_json(const Plan& plan);

}  // namespace hymig
