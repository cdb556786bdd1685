// Where `hymig drain` sends each domain: the pure part of the drain, unit-tested without libvirt or
// daemons. Largest domains go first (docs/operations.md, "Draining a node": the biggest are the
// hardest to place, so they get the targets while these are emptiest, and the longest migrations
// start first, keeping the parallel slots busy to the end), each to the target with the most room
// after it, never to one that lacks room for it.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "policy/host_capacity.hpp"

namespace hymig {

struct DrainDomain {
  std::string name;
  std::uint64_t ram_bytes = 0;
  std::uint64_t hugepage_bytes = 0;  // 0: regular memory
};

// A target as the drain sees it: what its daemon reported, less what this drain sent it since.
struct DrainTarget {
  std::string address;
  std::optional<HostCapacity> capacity;  // unset: its daemon did not answer (unreachable, wrong key)
  std::string unreachable;               // why, when capacity is unset
  std::uint64_t placed_bytes = 0;        // memory promised to this drain's migrations there
  std::uint64_t placed_huge_bytes = 0;   // of it, on huge pages
  unsigned running = 0;                  // this drain's migrations to it now
  std::uint64_t headroom = 0;            // memory the drain leaves free there for the host itself
};

// The order domains are taken in: largest RAM first, then by name (deterministic).
void order_for_drain(std::vector<DrainDomain>& domains);

// Bytes the target can still take for `d` (0 when unreachable or not a libvirt target).
std::uint64_t room_on(const DrainTarget& t, const DrainDomain& d);

struct TargetChoice {
  std::optional<std::size_t> target;  // index into the targets; unset: none now
  bool ever = false;                  // some target could take it once slots free (unset target only)
  std::string why;                    // the choice's reason, or why there is none
};

// The target for `d` now: among those not in `exclude`, reachable, taking libvirt domains, with
// room for it and a free incoming slot (their --max-incoming less theirs and ours), the one with
// the most room. When none has a free slot but one has room, `ever` is true (wait); when none has
// room, the reason names each target's.
TargetChoice choose_target(const DrainDomain& d, const std::vector<DrainTarget>& targets, const std::set<std::size_t>& exclude);

// A migration of `d` to `t` starts (its memory promised there, a slot taken), ends moved (the
// memory stays taken), or ends failed (the memory is given back).
void place_on(DrainTarget& t, const DrainDomain& d);
void moved_to(DrainTarget& t);
void unplace_from(DrainTarget& t, const DrainDomain& d);

}  // namespace hymig
