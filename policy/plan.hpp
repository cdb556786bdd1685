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

namespace hymig {

enum class BulkTransport { udp, tcp, rdma_ud };
enum class ReliableTransport { tcp, rdma_rc };

// Command-line spellings: "udp", "tcp", "ud" and "tcp", "rc".
std::string_view to_string(BulkTransport t);
std::string_view to_string(ReliableTransport t);
// Throw Error{usage} listing the valid values.
BulkTransport parse_bulk_transport(std::string_view s);
ReliableTransport parse_reliable_transport(std::string_view s);

struct Preferences {
  std::optional<BulkTransport> bulk;
  std::optional<ReliableTransport> reliable;
  std::optional<std::uint64_t> rate_bytes_per_s;
};

struct Plan {
  BulkTransport bulk = BulkTransport::tcp;
  ReliableTransport reliable = ReliableTransport::tcp;
  std::size_t datagram_bytes = 0;  // largest bulk message payload (UDP payload, or RoCE MTU for UD)
  std::uint64_t initial_rate_bytes_per_s = 0;  // where the pacer starts; it adapts from reports
  std::vector<std::string> reasons;            // one human sentence per decision
};

// Throws Error{usage} when a preference cannot be met (naming the side that lacks it),
// Error{protocol} when the two sides share no transport at all.
Plan choose_plan(const Capabilities& local, const Capabilities& peer, const Preferences& prefs);

nlohmann::json to_json(const Plan& plan);

}  // namespace hymig
