// One way of moving bytes between the two ranks of a pair: hymig itself (each transport), or a
// baseline/peer (raw TCP stream, memcpy, iperf3, UDT). The receiver rank starts its side and hands
// the sender an endpoint; the sender runs and measures; the receiver then collects its side.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "bench/suite/measurement.hpp"

namespace hymig::bench {

// Programs the peers run, found next to hymig-bench, in the build tree or on PATH.
struct Tools {
  std::optional<std::string> hymig, tcpstream, udtstream, iperf3;
  nlohmann::json to_json() const;
};
Tools find_tools(const std::string& hymig_override);

struct RunSpec {
  Cell cell;
  std::string bind_host;         // the address the receiver listens on (the sender connects there)
  std::string work_dir;          // per-rank scratch: child outputs
  std::chrono::milliseconds timeout{60000};  // one run, end to end
  double peer_cap_seconds = 0;   // baselines/peers stop after this long (0: move everything)
  bool series = false;           // record (time, bytes) samples (the shared-link scenario)
  double duration_seconds = 0;   // iperf3: run for this long instead of moving cell.size
  std::string extra_hymig_args;  // space-separated, appended to `hymig migrate`
  std::string key_file;          // the cluster key both hymig commands use (--key-file)
  double compressible = 0;       // hymig's synthetic image: this share of each page compresses
  std::string tcp_congestion;    // iperf3: the flow's congestion control (-C), "" = the kernel's default
};

class Peer {
 public:
  virtual ~Peer() = default;
  virtual std::string name() const = 0;
  // hymig migrates a dirtying image; the baselines only move a still buffer.
  virtual bool handles_dirty() const { return false; }
  // memcpy never crosses the link: it runs once per size, on the lossless pass only.
  virtual bool uses_network() const { return true; }
  // Why this peer cannot run on this rank (a missing program, no RDMA device), or nullopt.
  virtual std::optional<std::string> unavailable() const = 0;

  // Receiver rank. Returns the endpoint for the sender. Throws Error when it cannot start.
  virtual std::string start_receiver(const RunSpec& spec) = 0;
  // Sender rank. Runs the move to `endpoint` and measures it.
  virtual Measurement run_sender(const RunSpec& spec, const std::string& endpoint) = 0;
  // Receiver rank, after the sender finished: waits for its side, returns what it saw
  // ({"error": ...} when it failed; stream peers add their receiver figures).
  virtual nlohmann::json finish_receiver(const RunSpec& spec) = 0;
  // Sender rank: folds the receiver's view into the measurement.
  virtual void merge(Measurement& m, const nlohmann::json& receiver) const;
};

// hymig, hymig-lanes2, hymig-nozstd, hymig-tcp, hymig-rdma, tcp-stream, memcpy, iperf3, udt.
std::unique_ptr<Peer> make_peer(const std::string& name, const Tools& tools);
const std::vector<std::string>& all_peer_names();

}  // namespace hymig::bench
