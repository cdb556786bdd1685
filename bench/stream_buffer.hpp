// The in-memory buffer the baseline streams (raw TCP, UDT) move: populated before use, filled with
// incompressible bytes, so neither page faults nor zero pages flatter or penalise a peer.
#pragma once

#include <cstdint>
#include <span>

#include "core/mapping.hpp"

namespace hymig::bench {

// MAP_POPULATE: first-touch faults taken inside recv() stall the socket (4 GiB on loopback here:
// 4-5 Gbit/s end to end, against 7.6-10 when populated first). MADV_HUGEPAGE made population
// slower here (compaction stalls), so it is not used. Throws Error{io} when memory is short.
Mapping populated_buffer(std::uint64_t bytes);

// splitmix64 with every byte forced odd: pseudo-random and no zero byte anywhere, so nothing
// (zero-page detection, compression) can make the transfer cheaper than real memory.
void fill_incompressible(std::span<std::byte> out, std::uint64_t seed = 0x9e3779b97f4a7c15ull);

}  // namespace hymig::bench
