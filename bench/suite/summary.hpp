// Repetitions folded into one row per (scenario, transport, size, dirty rate, loss): medians with
// min and max, and the ratios the report leads with.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/suite/measurement.hpp"

namespace hymig::bench {

struct Spread {
  double median = 0, min = 0, max = 0;
};

struct SummaryRow {
  std::string scenario, transport;
  std::uint64_t size = 0, dirty_rate = 0;
  unsigned loss = 0;
  unsigned runs = 0, ok = 0, failed = 0, skipped = 0, capped = 0;
  std::string note;  // the first failure or skip reason
  Spread gbps, seconds, downtime_ms;
  Spread sender_cpu_gib, receiver_cpu_gib;  // CPU seconds per GiB moved ({-1,-1,-1}: not measured)
  double rounds = 0;  // median
  bool all_verified = false;
};

std::vector<SummaryRow> summarize(const std::vector<Record>& records);
const SummaryRow* find_row(const std::vector<SummaryRow>& rows, const std::string& scenario,
                           const std::string& transport, std::uint64_t size, std::uint64_t dirty, unsigned loss);
nlohmann::json to_json(const SummaryRow& r);

// "256M", "1G": sizes as people write them.
std::string size_label(std::uint64_t bytes);

}  // namespace hymig::bench
