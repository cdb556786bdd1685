// report.md: the machine, the command, the headline ratios, the tables and the plots of one run;
// bench/run-suite.sh stitches these into docs/performance.md.
#include <fstream>

#include <fmt/format.h>

#include "bench/suite/outputs.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

std::string range(const Spread& s, const char* fmt_one) {
  return fmt::format(fmt::runtime(std::string(fmt_one) + " ({}–{})"), s.median,
                     fmt::format(fmt::runtime(fmt_one), s.min), fmt::format(fmt::runtime(fmt_one), s.max));
}

std::string runs(const SummaryRow& r) {
  std::string s = fmt::format("{}/{}", r.ok, r.runs);
  if (r.capped) s += fmt::format(", {} capped", r.capped);
  if (r.failed) s += fmt::format(", {} failed", r.failed);
  if (r.skipped) s += fmt::format(", {} skipped", r.skipped);
  return s;
}

std::string cpu(const Spread& s) { return s.median >= 0 ? fmt::format("{:.2f}", s.median) : "–"; }

std::string cell_note(const SummaryRow& r) {
  std::string n = r.note;
  for (auto& c : n)
    if (c == '|' || c == '\n') c = ' ';
  return n.size() > 160 ? n.substr(0, 160) + "…" : n;
}

}  // namespace

void write_markdown(const std::string& dir, const nlohmann::json& meta, const std::vector<SummaryRow>& rows,
                    const nlohmann::json& headlines, const std::vector<std::string>& plots) {
  std::ofstream f(dir + "/report.md");
  if (!f) throw Error(ErrorKind::io, "cannot write " + dir + "/report.md");
  f << "## " << meta.value("title", "hymig-bench") << "\n\n";
  f << "Measured " << meta.value("date", "") << " with `" << meta.value("command", "") << "` ("
    << meta.value("ranks", 0) << " ranks, " << meta.value("pairs", 0) << " pair(s)).\n\n";
  f << "- Hosts: " << meta["hosts"].dump() << "; kernel " << meta.value("kernel", "?") << "; "
    << meta.value("cpu", "?") << ", " << meta.value("cores", 0) << " cores, " << meta.value("memory", "?") << "\n";
  f << "- Placement: " << meta.value("placement", "") << "\n";
  f << "- Each cell ran " << meta.value("reps", 0) << " time(s); figures are medians with min–max. Baselines and peers "
    << "stop after " << meta.value("peer_cap_seconds", 0.0) << " s and report the rate they reached (\"capped\").\n\n";

  f << "### Headline ratios\n\n| what | ratio | detail |\n|---|---|---|\n";
  for (const auto& h : headlines)
    f << fmt::format("| {} | {:.3f} | {} |\n", h.value("what", ""), h.value("value", 0.0), h.value("detail", ""));
  if (headlines.empty()) f << "| (none: a baseline or the lossless cell is missing) | | |\n";

  f << "\n### Idle image: throughput per transport and peer\n\n"
       "CPU is user + system seconds per GiB moved, on each side (medians).\n\n"
       "| transport | size | loss % | Gbit/s | seconds | CPU s/GiB send | CPU s/GiB receive | runs | note |\n"
       "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows)
    if (r.scenario == "matrix" && r.dirty_rate == 0)
      f << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.transport, size_label(r.size), r.loss,
                       r.ok ? range(r.gbps, "{:.3f}") : "–", r.ok ? range(r.seconds, "{:.2f}") : "–",
                       cpu(r.sender_cpu_gib), cpu(r.receiver_cpu_gib), runs(r), cell_note(r));

  bool dirty = false;
  for (const auto& r : rows) dirty |= r.scenario == "matrix" && r.dirty_rate > 0;
  if (dirty) {
    f << "\n### Dirtying image: hymig's rounds and downtime\n\n"
         "| transport | size | dirty rate | loss % | total s | downtime ms | rounds | CPU s/GiB send | CPU s/GiB receive | verified | runs | note |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : rows)
      if (r.scenario == "matrix" && r.transport.rfind("hymig", 0) == 0)
        f << fmt::format("| {} | {} | {}/s | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.transport,
                         size_label(r.size), size_label(r.dirty_rate), r.loss, r.ok ? range(r.seconds, "{:.2f}") : "–",
                         r.ok && r.downtime_ms.median >= 0 ? range(r.downtime_ms, "{:.0f}") : "–", r.rounds,
                         cpu(r.sender_cpu_gib), cpu(r.receiver_cpu_gib), r.ok && r.all_verified ? "yes" : "no",
                         runs(r), cell_note(r));
  }

  bool shared = false;
  for (const auto& r : rows) shared |= r.scenario == "shared-link";
  if (shared) {
    f << "\n### Shared link (" << shared_link_label(meta.value("shared_rate", ""), meta.value("shared_cc", ""))
      << ")\n\n"
         "| flow | loss % | Gbit/s (whole run) | runs | note |\n|---|---|---|---|---|\n";
    for (const auto& r : rows)
      if (r.scenario == "shared-link")
        f << fmt::format("| {} | {} | {} | {} | {} |\n", r.transport, r.loss, r.ok ? range(r.gbps, "{:.3f}") : "–",
                         runs(r), cell_note(r));
    f << "\nShares in the headline table are each flow's mean rate while both ran.\n";
  }

  if (!plots.empty()) {
    f << "\n### Plots\n\n";
    for (const auto& p : plots) f << "![" << p << "](" << p << ".png) ([SVG](" << p << ".svg))\n\n";
  } else if (meta.contains("plot_problem")) {
    f << "\nNo plots: " << meta.value("plot_problem", "") << "\n";
  }
}

}  // namespace hymig::bench
