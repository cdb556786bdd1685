#include "cli/pacer_trace.hpp"

#include <cerrno>
#include <cstring>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace hymig::cli {

PacerTrace::PacerTrace(const std::string& path) : path_(path), start_unix_(unix_seconds()) {
  file_.reset(std::fopen(path.c_str(), "a"));
  if (!file_) throw Error(ErrorKind::io, "--trace-pacer " + path + ": " + std::strerror(errno));
  // Where an appending stream starts is not fixed before its first write: ask for the end.
  if (std::fseek(file_.get(), 0, SEEK_END) == 0 && std::ftell(file_.get()) == 0)
    std::fputs(
        "start,t_s,round,phase,rate_mbps,send_mbps,delivered_mbps,loss,random_loss,qdelay_ms,receiver_queue_ms,"
        "rtt_ms,datagrams,link_mbps,long_link_mbps,typical_link_mbps,foreign_of_16\n",
        file_.get());
}

void PacerTrace::add(std::uint32_t round, const FeedbackSample& s, const PacerState& st) {
  if (!file_) return;
  constexpr double mbps = 8e-6;  // bytes/s -> Mbit/s
  std::fprintf(file_.get(), "%.3f,%.4f,%u,%s,%.1f,%.1f,%.1f,%.5f,%.5f,%.3f,%.3f,%.3f,%.0f,%.1f,%.1f,%.1f,%d\n",
               start_unix_, unix_seconds() - start_unix_, round, st.phase, st.rate * mbps, s.send_rate * mbps,
               s.delivered_rate * mbps, s.loss, st.random_loss, s.qdelay_s * 1e3, s.receiver_queue_s * 1e3,
               s.rtt_s * 1e3, s.datagrams, st.link * mbps, st.long_link * mbps, st.typical_link * mbps,
               st.foreign_samples);
}

void PacerTrace::close() {
  if (!file_) return;
  std::FILE* f = file_.release();
  const bool failed = std::ferror(f) != 0;
  if (std::fclose(f) != 0) throw Error(ErrorKind::io, "--trace-pacer " + path_ + ": " + std::strerror(errno));
  if (failed) throw Error(ErrorKind::io, "--trace-pacer " + path_ + ": not every line could be written");
}

}  // namespace hymig::cli
