// What a migration did, for the live progress line, the JSON report and the benchmarks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig {

struct RoundStats {
  std::uint32_t round = 0;
  std::uint64_t pages = 0;          // pages sent in this round
  std::uint64_t bytes = 0;          // bytes put on the bulk channel
  double seconds = 0;
  double rate = 0;                  // pacing rate at the end of the round, bytes/s
  double loss = 0;                  // datagram loss seen by the receiver
  std::uint64_t missing_after = 0;  // pages the receiver lacked after the round
  std::uint64_t dirty_after = 0;    // pages modified during the round
};

// Where the blackout (pause to committed) went, in ms.
struct DowntimeParts {
  double pause_ms = 0;         // stopping the workload (a VM: QMP stop)
  double final_delta_ms = 0;   // missing report, final delta, final-end
  double verify_ms = 0;        // digest and the destination's verify
  double device_state_ms = 0;  // a VM's device state: produced, moved, loaded on the destination
  double commit_ms = 0;        // commit until committed (a VM: the destination resumed it)
};

enum class Outcome { committed, failed, unknown };

struct MigrationReport {
  Outcome outcome = Outcome::failed;
  bool verified = false;
  std::string error;
  std::uint64_t session = 0;
  std::string image_kind, image_name;
  double total_ms = 0, downtime_ms = 0;
  double setup_ms = 0;    // notify .. ready: the destination preparing (e.g. starting a VM)
  double cleanup_ms = 0;  // after the commit: ending the source's copy (not in total_ms)
  std::string cleanup_error;  // the source's copy could not be ended (it stays paused)
  std::uint32_t rounds = 0;
  std::size_t page_size = 0;
  std::uint64_t pages_total = 0, zero_pages = 0;
  std::uint32_t lanes = 0;  // datagram lanes (0: --bulk tcp)
  std::uint64_t missing_pages = 0, modified_pages = 0, final_delta_pages = 0;
  // Of the final delta: datagram rounds while paused (under loss), and the pages they carried
  // (a page resent in a second round counts twice); the rest went over the reliable channel.
  std::uint32_t final_datagram_rounds = 0;
  std::uint64_t final_datagram_pages = 0;
  std::uint64_t final_reliable_pages = 0;  // of the final delta, on the reliable channel (or its writes)
  std::string bulk_transport, reliable_transport;
  std::uint64_t bulk_bytes = 0, bulk_datagrams = 0, reliable_bytes = 0;
  std::size_t datagram_bytes = 0;
  std::string compression = "off";  // off, on or auto (datagram pages only)
  std::uint64_t compressed_pages = 0, compressed_bytes = 0;  // pages sent compressed, and their bytes
  // What the governor measured (lane 0, at the end): the ratio of the pages it tried, zstd's time
  // and the lane's wait for the pacer per page (µs), its trials, and whether it was compressing.
  double compression_ratio = 1, zstd_us_per_page = 0, idle_us_per_page = 0;
  std::uint32_t compression_trials = 0;
  bool compression_active = false;
  double final_rate = 0;          // pacing rate when the last round ended, bytes/s
  // CPU seconds this process spent from connect to the end of the session (getrusage; set by the
  // caller): a synthetic image's writer threads are in it, its filling is not.
  double cpu_user_s = 0, cpu_system_s = 0;
  double random_loss = 0;         // the loss floor the pacer saw
  std::string digest;
  std::string stop_reason;        // why rounds ended: "converged", "max-rounds", "not-converging"
  std::uint64_t device_state_bytes = 0;  // a VM's device state (0: the image has none)
  std::string final_delta_method = "send";  // "write": RDMA WRITE into the target; "send": pages messages
  std::string final_delta_note;            // why not "write" when it was asked for
  DowntimeParts downtime_parts;
  std::vector<RoundStats> round_stats;
  nlohmann::json plan;            // the transport choice and its reasons (set by the caller)

  bool committed() const { return outcome == Outcome::committed; }
  nlohmann::json to_json() const;
  std::string to_text() const;
};

}  // namespace hymig
