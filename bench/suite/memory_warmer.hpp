// Makes the next allocations of a run land in memory the host has backed.
//
// On virtual machines whose host takes free guest memory back (free page reporting, a balloon),
// the first touch of such memory runs at ~300 MB/s instead of ~11 GB/s: whichever transport's
// receiver happened to get it paid 2-4x, and a cell's runs spread from 3 to 7 Gbit/s. Touching and
// freeing the run's size just before it starts hands every transport warm pages alike
// (docs/data-path.md, "Measuring on these machines").
#pragma once

#include <cstdint>

namespace hymig::bench {

// Faults in `bytes` of anonymous memory (huge pages where the kernel gives them; at most 40 % of
// the host's available memory), then frees it. Returns the rate it touched at, bytes/s (a few
// hundred MB/s: the host had taken the memory back); 0 when it could not.
double warm_memory(std::uint64_t bytes);

}  // namespace hymig::bench
