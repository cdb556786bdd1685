// The shared-link scenario: on a rate-limited link, hymig and a competing iperf3 TCP flow at once,
// each also alone, so each one's share of the link can be read off (and plotted over time).
#pragma once

#include <vector>

#include "bench/suite/measurement.hpp"
#include "bench/suite/mpi_world.hpp"
#include "bench/suite/peer.hpp"

namespace hymig::bench {

// Runs iperf3 alone, hymig alone, then both together `reps` times (iperf3 first, hymig joining
// after 2 s; rep 0, 1, ...), at the link conditions already in place. Sender ranks get records
// with scenario "shared-link" and transports iperf3-alone, hymig-alone, iperf3-shared,
// hymig-shared; receivers get none.
std::vector<Record> run_shared_link(const MpiWorld& world, const Tools& tools, const RunSpec& base,
                                    double iperf_seconds, int pair, unsigned reps);

}  // namespace hymig::bench
