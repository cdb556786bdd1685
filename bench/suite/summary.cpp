#include "bench/suite/summary.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

namespace hymig::bench {
namespace {

Spread spread(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

}  // namespace

std::string size_label(std::uint64_t b) {
  if (b == 0) return "0";
  if (b % (1ull << 30) == 0) return fmt::format("{}G", b >> 30);
  if (b % (1ull << 20) == 0) return fmt::format("{}M", b >> 20);
  if (b % (1ull << 10) == 0) return fmt::format("{}K", b >> 10);
  return std::to_string(b);
}

std::vector<SummaryRow> summarize(const std::vector<Record>& records) {
  using Key = std::tuple<std::string, std::string, std::uint64_t, std::uint64_t, unsigned>;
  std::map<Key, std::vector<const Record*>> groups;
  std::vector<Key> order;  // first appearance: the matrix's own order
  for (const auto& r : records) {
    Key k{r.scenario, r.cell.transport, r.cell.size, r.cell.dirty_rate, r.cell.loss};
    if (!groups.count(k)) order.push_back(k);
    groups[k].push_back(&r);
  }
  std::vector<SummaryRow> rows;
  for (const auto& k : order) {
    SummaryRow row;
    std::tie(row.scenario, row.transport, row.size, row.dirty_rate, row.loss) = k;
    std::vector<double> gbps, secs, down, rounds, scpu, rcpu;
    row.all_verified = true;
    for (const Record* r : groups[k]) {
      ++row.runs;
      switch (r->m.status) {
        case Measurement::Status::ok:
          ++row.ok;
          gbps.push_back(r->m.gbps());
          secs.push_back(r->m.seconds);
          if (r->m.downtime_ms >= 0) down.push_back(r->m.downtime_ms);
          rounds.push_back(r->m.rounds);
          if (const double c = r->m.cpu_per_gib(r->m.sender_cpu_s); c >= 0) scpu.push_back(c);
          if (const double c = r->m.cpu_per_gib(r->m.receiver_cpu_s); c >= 0) rcpu.push_back(c);
          row.capped += r->m.capped;
          break;
        case Measurement::Status::failed: ++row.failed; break;
        case Measurement::Status::skipped: ++row.skipped; break;
      }
      if (r->m.status != Measurement::Status::ok && row.note.empty()) row.note = r->m.note;
      if (r->cell.transport.rfind("hymig", 0) == 0 && !r->m.verified) row.all_verified = false;
    }
    row.gbps = spread(gbps);
    row.seconds = spread(secs);
    row.downtime_ms = down.empty() ? Spread{-1, -1, -1} : spread(down);
    row.rounds = spread(rounds).median;
    row.sender_cpu_gib = scpu.empty() ? Spread{-1, -1, -1} : spread(scpu);
    row.receiver_cpu_gib = rcpu.empty() ? Spread{-1, -1, -1} : spread(rcpu);
    rows.push_back(row);
  }
  return rows;
}

const SummaryRow* find_row(const std::vector<SummaryRow>& rows, const std::string& scenario,
                           const std::string& transport, std::uint64_t size, std::uint64_t dirty, unsigned loss) {
  for (const auto& r : rows)
    if (r.scenario == scenario && r.transport == transport && r.size == size && r.dirty_rate == dirty &&
        r.loss == loss && r.ok > 0)
      return &r;
  return nullptr;
}

nlohmann::json to_json(const SummaryRow& r) {
  auto sp = [](const Spread& s) { return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}}; };
  return {{"scenario", r.scenario}, {"transport", r.transport}, {"size", r.size}, {"dirty_rate", r.dirty_rate},
          {"loss", r.loss}, {"runs", r.runs}, {"ok", r.ok}, {"failed", r.failed}, {"skipped", r.skipped},
          {"capped", r.capped}, {"note", r.note}, {"gbps", sp(r.gbps)}, {"seconds", sp(r.seconds)},
          {"downtime_ms", sp(r.downtime_ms)}, {"rounds", r.rounds}, {"all_verified", r.all_verified},
          {"sender_cpu_s_per_gib", sp(r.sender_cpu_gib)}, {"receiver_cpu_s_per_gib", sp(r.receiver_cpu_gib)}};
}

}  // namespace hymig::bench
