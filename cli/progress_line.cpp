#include "cli/progress_line.hpp"

#include <cstdio>

namespace hymig::cli {

void ProgressLine::show(const LiveProgress& p) {
  if (!enabled_) return;
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
