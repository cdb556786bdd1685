// One run of one cell on this rank's pair, over MPI: the receiver starts its side (or says why it
// cannot), the sender runs and measures, then the receiver collects its side and reports back.
#pragma once

#include <optional>

#include "bench/suite/measurement.hpp"
#include "bench/suite/mpi_world.hpp"
#include "bench/suite/peer.hpp"

namespace hymig::bench {

// Both ranks of a pair call this with the same peer kind and spec; the sender gets the
// measurement (with the receiver's view merged in), the receiver gets nullopt.
std::optional<Measurement> run_on_pair(const MpiWorld& world, Peer& peer, const RunSpec& spec);

}  // namespace hymig::bench
