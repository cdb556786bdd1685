#include "cli/progress_line.hpp"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

namespace hymig::cli {

void ProgressLine::show(const LiveProgress& p) {
  if (mode_ == Mode::off) return;
  if (mode_ == Mode::json) {
    // Wall-clock time, so lines from two hosts (or from iperf3 beside us) can be put on one axis.
    const double t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::fputs(fmt::format("{{\"progress\":{{\"t\":{:.3f},\"phase\":\"{}\",\"round\":{},\"round_bytes_done\":{},"
                           "\"round_bytes\":{},\"bytes_moved\":{},\"rate\":{:.0f},\"loss\":{:.5f},\"qdelay_ms\":{:.2f}}}}}\n",
                           t, p.phase, p.round, p.round_bytes_done, p.round_bytes,
                           p.bytes_before_round + p.round_bytes_done, p.rate, p.loss, p.qdelay_s * 1e3)
                   .c_str(),
               stderr);
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
