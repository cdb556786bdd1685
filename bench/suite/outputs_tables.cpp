// CSV and JSON outputs and the headline ratios.
#include <algorithm>
#include <fstream>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "bench/suite/outputs.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

std::ofstream open_out(const std::string& path) {
  std::ofstream f(path);
  if (!f) throw Error(ErrorKind::io, "cannot write " + path);
  return f;
}

std::string csv_text(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
  return q + "\"";
}

// Average rate (bytes/s) of a cumulative series between two times.
double rate_between(const std::vector<std::pair<double, double>>& s, double from, double to) {
  double b0 = -1, t0 = 0, b1 = -1, t1 = 0;
  for (const auto& [t, b] : s) {
    if (t >= from && b0 < 0) b0 = b, t0 = t;
    if (t <= to) b1 = b, t1 = t;
  }
  return b0 >= 0 && b1 > b0 && t1 > t0 ? (b1 - b0) / (t1 - t0) : 0;
}

}  // namespace

std::string shared_link_label(const std::string& rate, const std::string& cc) {
  const std::string with = cc.empty() ? "" : ", iperf3 " + cc;
  if (rate.rfind("external:", 0) == 0) return rate.substr(9) + " tbf in a middle namespace" + with;
  return rate + " tbf on the sender" + with;
}

nlohmann::json headline_ratios(const std::vector<SummaryRow>& rows, const std::vector<Record>& records,
                               const std::string& shared_rate, const std::string& shared_cc) {
  nlohmann::json out = nlohmann::json::array();
  auto add = [&](std::string what, double v, std::string detail) {
    out.push_back({{"what", std::move(what)}, {"value", v}, {"detail", std::move(detail)}});
  };
  for (const auto& r : rows) {
    if (r.scenario != "matrix" || r.dirty_rate != 0 || r.loss != 0 || r.transport != "hymig") continue;
    for (const char* base : {"tcp-stream", "hymig-tcp", "memcpy"})
      if (const auto* b = find_row(rows, "matrix", base, r.size, 0, 0); b && b->gbps.median > 0)
        add(fmt::format("hymig / {} throughput, {}, lossless", base, size_label(r.size)), r.gbps.median / b->gbps.median,
            fmt::format("{:.2f} vs {:.2f} Gbit/s (medians)", r.gbps.median, b->gbps.median));
  }
  for (const auto& r : rows) {
    if (r.scenario != "matrix" || r.dirty_rate != 0 || r.loss != 0 || r.transport != "hymig") continue;
    if (const auto* b = find_row(rows, "matrix", "hymig-tcp", r.size, 0, 0)) {
      if (r.sender_cpu_gib.median > 0 && b->sender_cpu_gib.median > 0)
        add(fmt::format("hymig / hymig-tcp sender CPU per GiB, {}, lossless", size_label(r.size)),
            r.sender_cpu_gib.median / b->sender_cpu_gib.median,
            fmt::format("{:.2f} vs {:.2f} s/GiB", r.sender_cpu_gib.median, b->sender_cpu_gib.median));
      if (r.receiver_cpu_gib.median > 0 && b->receiver_cpu_gib.median > 0)
        add(fmt::format("hymig / hymig-tcp receiver CPU per GiB, {}, lossless", size_label(r.size)),
            r.receiver_cpu_gib.median / b->receiver_cpu_gib.median,
            fmt::format("{:.2f} vs {:.2f} s/GiB", r.receiver_cpu_gib.median, b->receiver_cpu_gib.median));
    }
    for (const char* variant : {"hymig-lanes2", "hymig-nozstd"})
      if (const auto* v = find_row(rows, "matrix", variant, r.size, 0, 0); v && r.gbps.median > 0)
        add(fmt::format("{} / hymig throughput, {}, lossless", variant, size_label(r.size)), v->gbps.median / r.gbps.median,
            fmt::format("{:.2f} vs {:.2f} Gbit/s", v->gbps.median, r.gbps.median));
  }
  // Blackout under loss against the lossless blackout, for the same dirtying image.
  for (const auto& r : rows) {
    if (r.scenario != "matrix" || r.dirty_rate == 0 || r.loss == 0 || r.transport.rfind("hymig", 0) != 0) continue;
    if (const auto* b = find_row(rows, "matrix", r.transport, r.size, r.dirty_rate, 0);
        b && b->downtime_ms.median > 0 && r.ok && r.downtime_ms.median >= 0)
      add(fmt::format("{} blackout at {} % loss / lossless, {} dirtied at {}/s", r.transport, r.loss, size_label(r.size),
                      size_label(r.dirty_rate)),
          r.downtime_ms.median / b->downtime_ms.median,
          fmt::format("{:.0f} vs {:.0f} ms", r.downtime_ms.median, b->downtime_ms.median));
  }
  for (const auto& r : rows) {
    if (r.scenario != "matrix" || r.dirty_rate != 0 || r.loss == 0) continue;
    if (const auto* b = find_row(rows, "matrix", r.transport, r.size, 0, 0); b && b->gbps.median > 0 && r.ok)
      add(fmt::format("{} at {} % loss / lossless, {}", r.transport, r.loss, size_label(r.size)),
          r.gbps.median / b->gbps.median,
          fmt::format("{:.3f} vs {:.3f} Gbit/s{}", r.gbps.median, b->gbps.median, r.capped ? " (capped runs)" : ""));
  }
  // Shares: each flow's mean rate while both ran; over the repetitions of a loss level, the median
  // run's share and the range.
  struct Share {
    double share, hymig, iperf;
  };
  std::map<unsigned, std::vector<Share>> shares;
  for (const auto& rec : records) {
    if (rec.scenario != "shared-link" || rec.cell.transport != "hymig-shared" || rec.m.status != Measurement::Status::ok ||
        rec.m.series.size() < 2)
      continue;
    const double from = rec.m.series.front().first, to = rec.m.series.back().first;
    for (const auto& other : records)
      if (other.scenario == "shared-link" && other.cell.transport == "iperf3-shared" && other.pair == rec.pair &&
          other.cell.loss == rec.cell.loss && other.cell.rep == rec.cell.rep && !other.m.series.empty()) {
        const double h = rate_between(rec.m.series, from, to), i = rate_between(other.m.series, from, to);
        if (h + i > 0) shares[rec.cell.loss].push_back({h / (h + i), h, i});
      }
  }
  for (auto& [loss, runs] : shares) {
    std::sort(runs.begin(), runs.end(), [](const Share& a, const Share& b) { return a.share < b.share; });
    const std::size_t n = runs.size();
    const Share& mid = runs[(n - 1) / 2];
    // An even count's median lies between two runs: their mean, and no one run's rates.
    const double median = n % 2 ? mid.share : (mid.share + runs[n / 2].share) / 2;
    std::string detail = fmt::format("hymig {:.0f} Mbit/s, iperf3 {:.0f} Mbit/s while both ran", mid.hymig * 8 / 1e6,
                                     mid.iperf * 8 / 1e6);
    if (n > 1)
      detail = fmt::format("median of {} runs ({:.2f}–{:.2f}){}", n, runs.front().share, runs.back().share,
                           n % 2 ? "; in it, " + detail : "");
    add(fmt::format("shared link ({}) at {} % loss: hymig's share", shared_link_label(shared_rate, shared_cc), loss),
        median, detail);
  }
  return out;
}

void write_csv(const std::string& dir, const std::vector<Record>& records, const std::vector<SummaryRow>& rows) {
  auto f = open_out(dir + "/results.csv");
  f << "scenario,pair,transport,size,dirty_rate,loss,rep,status,capped,seconds,bytes,gbps,downtime_ms,rounds,wire_bytes,"
       "verified,sender_cpu_s,receiver_cpu_s,note\n";
  for (const auto& r : records)
    f << fmt::format("{},{},{},{},{},{},{},{},{},{:.6f},{},{:.6f},{:.3f},{},{},{},{:.3f},{:.3f},{}\n", r.scenario, r.pair,
                     r.cell.transport, r.cell.size, r.cell.dirty_rate, r.cell.loss, r.cell.rep, to_string(r.m.status),
                     r.m.capped ? 1 : 0, r.m.seconds, r.m.bytes, r.m.gbps(), r.m.downtime_ms, r.m.rounds, r.m.wire_bytes,
                     r.m.verified ? 1 : 0, r.m.sender_cpu_s, r.m.receiver_cpu_s, csv_text(r.m.note));
  auto s = open_out(dir + "/summary.csv");
  s << "scenario,transport,size,dirty_rate,loss,runs,ok,failed,skipped,capped,gbps_median,gbps_min,gbps_max,"
       "seconds_median,seconds_min,seconds_max,downtime_ms_median,downtime_ms_min,downtime_ms_max,rounds_median,note\n";
  for (const auto& r : rows)
    s << fmt::format("{},{},{},{},{},{},{},{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f},{:.3f},{:.3f},{},{}\n",
                     r.scenario, r.transport, r.size, r.dirty_rate, r.loss, r.runs, r.ok, r.failed, r.skipped, r.capped,
                     r.gbps.median, r.gbps.min, r.gbps.max, r.seconds.median, r.seconds.min, r.seconds.max,
                     r.downtime_ms.median, r.downtime_ms.min, r.downtime_ms.max, r.rounds, csv_text(r.note));
}

void write_json(const std::string& dir, const nlohmann::json& meta, const std::vector<Record>& records,
                const std::vector<SummaryRow>& rows, const nlohmann::json& headlines) {
  nlohmann::json j = {{"meta", meta}, {"headlines", headlines}};
  j["runs"] = nlohmann::json::array();
  for (const auto& r : records) j["runs"].push_back(to_json(r));
  j["summary"] = nlohmann::json::array();
  for (const auto& r : rows) j["summary"].push_back(to_json(r));
  open_out(dir + "/results.json") << j.dump(2) << "\n";
}

}  // namespace hymig::bench
