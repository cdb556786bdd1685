// One benchmark cell (what was moved, how, over what link) and what one run of it measured.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig::bench {

struct Cell {
  std::string transport;        // hymig, hymig-tcp, hymig-rdma, tcp-stream, memcpy, iperf3, udt
  std::uint64_t size = 0;       // bytes of the image (or buffer) to move
  std::uint64_t dirty_rate = 0; // bytes/s the image's writers dirty (hymig transports only)
  unsigned loss = 0;            // % random loss on the link
  unsigned rep = 0;
};

struct Measurement {
  enum class Status { ok, failed, skipped };
  Status status = Status::failed;
  std::string note;             // why it failed or was skipped
  bool capped = false;          // stopped at --peer-cap-seconds: bytes is what arrived by then
  double seconds = 0;           // wall time of the move (hymig: the whole migration)
  std::uint64_t bytes = 0;      // payload bytes moved (the image size for a complete run)
  double downtime_ms = -1;      // hymig only
  unsigned rounds = 0;          // hymig only
  std::uint64_t wire_bytes = 0; // bytes put on the channels (hymig: bulk + reliable)
  bool verified = false;        // hymig: both sides' digests matched
  // CPU seconds (user + system) each side spent on the move (-1: not measured). hymig's sender:
  // its report (getrusage from connect to the end, the image's filling left out); its receiver:
  // the whole `serve --once` process; the stream tools: from the transfer's start; iperf3: its
  // own CPU utilisation times the duration.
  double sender_cpu_s = -1, receiver_cpu_s = -1;
  // CPU seconds per GiB moved, or -1.
  double cpu_per_gib(double cpu_s) const { return cpu_s >= 0 && bytes ? cpu_s / (static_cast<double>(bytes) / (1ull << 30)) : -1; }
  std::vector<std::pair<double, double>> series;  // (unix time, bytes moved so far), shared-link runs

  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0; }
  static Measurement skipped(std::string why) {
    Measurement m;
    m.status = Status::skipped;
    m.note = std::move(why);
    return m;
  }
  static Measurement failed(std::string why) {
    Measurement m;
    m.note = std::move(why);
    return m;
  }
};

struct Record {
  int pair = 0;
  std::string scenario = "matrix";  // matrix | shared-link
  Cell cell;
  Measurement m;
};

const char* to_string(Measurement::Status s);
nlohmann::json to_json(const Record& r);
Record record_from_json(const nlohmann::json& j);

}  // namespace hymig::bench
