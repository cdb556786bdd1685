// hymig-bench's command line: the matrix (sizes x dirty rates x loss x transports x repetitions),
// where the ranks run (network namespaces, the link's rate), the shared-link scenario, outputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hymig::bench {

struct BenchOptions {
  std::vector<std::uint64_t> sizes{256ull << 20, 1ull << 30};
  std::vector<std::uint64_t> dirty_rates{0, 64ull << 20, 256ull << 20};
  std::vector<unsigned> losses{0};
  std::vector<std::string> transports;  // default: every peer
  unsigned reps = 3;
  std::string out_dir = "hymig-bench-out";
  std::string title = "hymig-bench";
  std::string netns_sender, netns_receiver;  // empty: stay where mpirun put us
  std::string rate_limit;                     // tc tbf rate on the sender's way out ("" none)
  bool shape_here = false;                    // apply loss/rate in the current namespaces
  std::string bind_host;                      // "" = pick (loopback when both ranks share a host)
  bool shared_link = false;
  std::string shared_rate = "1gbit";
  std::string shared_cc = "cubic";  // the iperf3 flow's congestion control (iperf3 -C)
  std::vector<unsigned> shared_losses{0, 1};
  std::uint64_t shared_size = 512ull << 20;
  double shared_seconds = 14;
  unsigned shared_reps = 1;  // runs of the together part: a single share moves by +-0.1 between runs
  double peer_cap_seconds = 8;
  unsigned run_timeout_seconds = 180;
  std::string hymig_path;
  std::string extra_hymig_args;
  double compressible = 0;  // share of each hymig image page that compresses
  std::string key_file;  // the cluster key file of hymig's sessions ("" = $HYMIG_KEY_FILE or a throwaway one)
  bool warm_memory = true;  // touch and free each run's size first (bench/suite/memory_warmer.hpp)
  bool plots = true;
  bool quick = false;
  std::string command_line;  // as typed, for the report

  bool shaping() const { return !netns_receiver.empty() || shape_here; }
};

// Parses argv. Returns nullopt after printing --help. Throws Error{usage} with a clear message.
std::optional<BenchOptions> parse_bench_options(int argc, char** argv);

}  // namespace hymig::bench
