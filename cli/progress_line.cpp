#include "cli/progress_line.hpp"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"

namespace hymig::cli {

void ProgressLine::show(const LiveProgress& p) {
  if (mode_ == Mode::off) return;
  if (mode_ == Mode::json) {
    // Wall-clock time, so lines from two hosts (or from iperf3 beside us) can be put on one axis.
    const double t = unix_seconds();
    // Rounded where more digits would be noise: ms, whole bytes/s, 10 µs of queueing delay.
    const auto round_to = [](double v, double unit) { return std::round(v / unit) * unit; };
    const nlohmann::json line = {{"progress",
                                  {{"t", round_to(t, 1e-3)},
                                   {"phase", p.phase},
                                   {"round", p.round},
                                   {"round_bytes_done", p.round_bytes_done},
                                   {"round_bytes", p.round_bytes},
                                   {"bytes_moved", p.bytes_before_round + p.round_bytes_done},
                                   {"rate", std::llround(p.rate)},
                                   {"loss", round_to(p.loss, 1e-5)},
                                   {"qdelay_ms", round_to(p.qdelay_s * 1e3, 1e-2)}}}};
    std::fputs((line.dump() + "\n").c_str(), stderr);
    std::fflush(stderr);
    return;
  }
  const double pct = p.round_bytes ? 100.0 * p.round_bytes_done / p.round_bytes : 0;
  std::fprintf(stderr, "\r\033[Khymig: round %u %5.1f%%  %6.2f Gbit/s  loss %5.2f%%  %s", p.round, pct > 100 ? 100 : pct,
               p.rate * 8 / 1e9, p.loss * 100, p.phase);
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace hymig::cli
