#include "policy/drain_plan.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/units.hpp"

namespace hymig {

void order_for_drain(std::vector<DrainDomain>& domains) {
  std::sort(domains.begin(), domains.end(), [](const DrainDomain& a, const DrainDomain& b) {
    return a.ram_bytes != b.ram_bytes ? a.ram_bytes > b.ram_bytes : a.name < b.name;
  });
}

std::uint64_t room_on(const DrainTarget& t, const DrainDomain& d) {
  if (!t.capacity || !t.capacity->libvirt) return 0;
  const std::uint64_t room = room_for(*t.capacity, d.hugepage_bytes, t.headroom);
  const std::uint64_t placed = d.hugepage_bytes ? t.placed_huge_bytes : t.placed_bytes;
  return room > placed ? room - placed : 0;
}

TargetChoice choose_target(const DrainDomain& d, const std::vector<DrainTarget>& targets, const std::set<std::size_t>& exclude) {
  TargetChoice best;
  std::uint64_t best_room = 0;
  std::string reasons;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const DrainTarget& t = targets[i];
    auto note = [&](const std::string& why) { reasons += (reasons.empty() ? "" : "; ") + t.address + ": " + why; };
    if (exclude.count(i)) {
      note("failed for it already");
      continue;
    }
    if (!t.capacity) {
      note("unreachable (" + t.unreachable + ")");
      continue;
    }
    if (!t.capacity->libvirt) {
      note("its daemon takes no libvirt domains (serve --libvirt)");
      continue;
    }
    const std::uint64_t room = room_on(t, d);
    if (room < d.ram_bytes) {
      note(fmt::format("room for {} {}", format_bytes(double(room)),
                       d.hugepage_bytes ? "on " + format_bytes(double(d.hugepage_bytes)) + " huge pages" : "of memory"));
      continue;
    }
    const unsigned busy = t.capacity->incoming + t.running;
    if (busy >= t.capacity->max_incoming) {
      best.ever = true;
      note(fmt::format("room, but {} of its {} incoming slots taken", busy, t.capacity->max_incoming));
      continue;
    }
    if (!best.target || room > best_room) {
      best.target = i;
      best_room = room;
    }
  }
  if (best.target) {
    const DrainTarget& t = targets[*best.target];
    best.ever = true;
    best.why = fmt::format("most room: {} for {} (incoming {} of {})", format_bytes(double(best_room)),
                           format_bytes(double(d.ram_bytes)), t.capacity->incoming + t.running, t.capacity->max_incoming);
  } else {
    best.why = (best.ever ? "every target with room is busy: " : "no target has room: ") + reasons;
  }
  return best;
}

void place_on(DrainTarget& t, const DrainDomain& d) {
  (d.hugepage_bytes ? t.placed_huge_bytes : t.placed_bytes) += d.ram_bytes;
  ++t.running;
}

void moved_to(DrainTarget& t) {
  if (t.running) --t.running;
}

void unplace_from(DrainTarget& t, const DrainDomain& d) {
  auto& placed = d.hugepage_bytes ? t.placed_huge_bytes : t.placed_bytes;
  placed -= std::min(placed, d.ram_bytes);
  if (t.running) --t.running;
}

}  // namespace hymig
