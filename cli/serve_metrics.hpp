// The daemon's Prometheus metrics (`serve --metrics ADDR`): counters and histograms of finished
// migrations, gauges of running ones, datagrams dropped by reason; served as the text exposition
// format over HTTP by libmicrohttpd (a well-kept parser for bytes that come from the network).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hymig::cli {

// A finished incoming migration, as the metrics count it.
struct FinishedMigration {
  bool committed = false;
  double seconds = 0;
  double blackout_s = -1;  // pause to commit as the destination saw it; < 0: it never paused
  std::uint64_t bytes_received = 0;
  std::uint64_t bad_mac = 0, replayed = 0, future_round = 0, stale = 0, bad_hash = 0, bad_compressed = 0, invalid = 0,
                broken_record = 0;
};

// A running one.
struct RunningMigration {
  std::string session, image;
  std::uint64_t bytes_received = 0, remaining_bytes = 0;
  double dirty_rate = 0;
};

class ServeMetrics {
 public:
  void finished(const FinishedMigration& m);
  // The exposition text, with `running` as gauges.
  std::string exposition(const std::vector<RunningMigration>& running, bool draining) const;

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;  // per bound, not cumulative; one more for +Inf
    double sum = 0;
    std::uint64_t count = 0;
    explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1) {}
    void observe(double v);
    void write(std::string& out, const char* name) const;
  };
  mutable std::mutex mutex_;
  std::uint64_t committed_ = 0, failed_ = 0, bytes_ = 0;
  // The reason labels, in the order finished() adds a FinishedMigration's counts.
  static constexpr const char* kDropReasons[] = {"bad_mac",  "replayed",       "future_round", "stale_round",
                                                 "bad_hash", "bad_compressed", "invalid",      "broken_record"};
  std::array<std::uint64_t, std::size(kDropReasons)> dropped_{};
  Histogram blackout_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  Histogram total_{{1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}};
};

// An HTTP endpoint answering GET /metrics with render(); everything else 404. Stops on destruction.
class MetricsEndpoint {
 public:
  // Listens on `address` (HOST:PORT). Throws Error{usage} for a bad address, Error{io} when it cannot.
  MetricsEndpoint(const std::string& address, std::function<std::string()> render);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
  std::string address() const { return address_; }  // with the port bound (port 0: the one chosen)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string address_;
};

}  // namespace hymig::cli
