// Plots with gnuplot (Debian's gnuplot-nox): the data go to .dat files and each plot to a .gp
// script beside them, so a plot can be restyled and re-rendered by hand; both PNG and SVG.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "bench/suite/child_process.hpp"
#include "bench/suite/outputs.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) throw Error(ErrorKind::io, "cannot write " + path);
  f << text;
}

// Renders `body` (which ends in one plot command) as NAME.png and NAME.svg.
bool render(const std::string& dir, const std::string& name, const std::string& body, std::string& problem) {
  const std::string script = fmt::format(
      "set terminal pngcairo size 960,560 noenhanced font ',10'\nset output '{0}.png'\n{1}\n"
      "set terminal svg size 960,560 noenhanced dynamic\nset output '{0}.svg'\nreplot\n",
      name, body);
  write_text(dir + "/" + name + ".gp", script);
  const auto r = run_command({"sh", "-c", "cd \"$0\" && exec gnuplot \"$1\"", dir, name + ".gp"}, "",
                             std::chrono::seconds(60));
  if (!r.status.ok()) {
    if (problem.empty()) problem = "gnuplot " + name + ".gp: " + r.status.describe() + ": " + r.err.substr(0, 300);
    return false;
  }
  return true;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

std::vector<std::string> write_plots(const std::string& dir, const std::vector<SummaryRow>& rows,
                                     const std::vector<Record>& records, std::string& problem) {
  std::vector<std::string> made;
  if (!find_program({"gnuplot"})) {
    problem = "gnuplot is not installed (Debian: gnuplot-nox): no plots";
    return made;
  }
  std::vector<std::string> transports;
  std::set<std::uint64_t> sizes;
  std::set<unsigned> losses;
  std::set<std::uint64_t> dirties;
  for (const auto& r : rows) {
    if (r.scenario != "matrix") continue;
    if (std::find(transports.begin(), transports.end(), r.transport) == transports.end()) transports.push_back(r.transport);
    sizes.insert(r.size);
    losses.insert(r.loss);
    dirties.insert(r.dirty_rate);
  }

  // 1. Throughput against loss, per transport and peer (idle image), one plot per size.
  for (auto size : sizes) {
    std::vector<std::string> parts;
    for (const auto& t : transports) {
      std::string dat;
      for (auto loss : losses)
        if (const auto* r = find_row(rows, "matrix", t, size, 0, loss); r && r->gbps.median > 0)
          dat += fmt::format("{} {} {} {}\n", loss, r->gbps.median, r->gbps.min, r->gbps.max);
      if (dat.empty()) continue;
      const std::string file = fmt::format("throughput_{}_{}.dat", t, size_label(size));
      write_text(dir + "/" + file, dat);
      parts.push_back(fmt::format("{} using 1:2:3:4 with yerrorlines lw 2 title {}", quoted(file), quoted(t)));
    }
    if (parts.empty()) continue;
    std::string body = fmt::format(
        "set title 'Throughput against random loss, {} idle image (median, min-max)'\n"
        "set xlabel 'random loss (%)'\nset ylabel 'Gbit/s'\nset logscale y\nset grid\nset key outside right\n"
        "set xrange [-0.5:{}]\nplot ",
        size_label(size), *losses.rbegin() + 0.5);
    for (std::size_t i = 0; i < parts.size(); ++i) body += (i ? ", " : "") + parts[i];
    const std::string name = "throughput_vs_loss_" + size_label(size);
    if (render(dir, name, body, problem)) made.push_back(name);
  }

  // 2. Downtime against dirty rate, hymig's transports, lossless link, one line per size.
  if (dirties.size() > 1) {
    std::vector<std::string> parts;
    for (const auto& t : transports) {
      if (t.rfind("hymig", 0) != 0) continue;
      for (auto size : sizes) {
        std::string dat;
        for (auto d : dirties)
          if (const auto* r = find_row(rows, "matrix", t, size, d, 0); r && r->downtime_ms.median >= 0)
            dat += fmt::format("{} {} {} {}\n", static_cast<double>(d) / (1 << 20), r->downtime_ms.median,
                               r->downtime_ms.min, r->downtime_ms.max);
        if (dat.empty()) continue;
        const std::string file = fmt::format("downtime_{}_{}.dat", t, size_label(size));
        write_text(dir + "/" + file, dat);
        parts.push_back(fmt::format("{} using 1:2:3:4 with yerrorlines lw 2 title {}", quoted(file),
                                    quoted(t + " " + size_label(size))));
      }
    }
    if (!parts.empty()) {
      std::string body =
          "set title 'Downtime against dirty rate, lossless link (median, min-max)'\n"
          "set xlabel 'dirty rate (MiB/s)'\nset ylabel 'downtime (ms)'\nset grid\nset key outside right\n"
          "set yrange [0:*]\nplot ";
      for (std::size_t i = 0; i < parts.size(); ++i) body += (i ? ", " : "") + parts[i];
      if (render(dir, "downtime_vs_dirty", body, problem)) made.push_back("downtime_vs_dirty");
    }
  }

  // 3. Total time per transport (idle image, lossless), a cluster per size.
  {
    std::string dat = "# transport";
    for (auto size : sizes) dat += fmt::format(" {0} {0}_min {0}_max", size_label(size));
    dat += "\n";
    bool any = false;
    for (const auto& t : transports) {
      std::string line = t;
      bool has = false;
      for (auto size : sizes) {
        if (const auto* r = find_row(rows, "matrix", t, size, 0, 0)) {
          line += fmt::format(" {} {} {}", r->seconds.median, r->seconds.min, r->seconds.max);
          has = true;
        } else {
          line += " NaN NaN NaN";
        }
      }
      if (has) dat += line + "\n";  // a transport that never ran (no RDMA here) gets no empty slot
      any |= has;
    }
    if (any) {
      write_text(dir + "/total_time.dat", dat);
      std::string body =
          "set title 'Time to move an idle image, lossless link (median, min-max)'\n"
          "set ylabel 'seconds (log scale)'\nset logscale y\nset grid ytics\nset style data histograms\n"
          "set style histogram errorbars gap 2 lw 1\nset style fill solid 0.6 border -1\nset key outside right\n"
          "set xtics rotate by -30\nplot ";
      int col = 2;
      bool first = true;
      for (auto size : sizes) {
        body += fmt::format("{}'total_time.dat' using {}:{}:{}{} title {}", first ? "" : ", ", col, col + 1, col + 2,
                            first ? ":xtic(1)" : "", quoted(size_label(size)));
        col += 3;
        first = false;
      }
      if (render(dir, "total_time", body, problem)) made.push_back("total_time");
    }
  }

  // 4. The shared link over time: each flow's rate, hymig joining the iperf3 flow (pair 0, rep 0).
  std::map<unsigned, std::pair<const Record*, const Record*>> shared;
  for (const auto& r : records)
    if (r.scenario == "shared-link" && r.pair == 0 && r.cell.rep == 0 && r.m.series.size() > 1) {
      if (r.cell.transport == "hymig-shared") shared[r.cell.loss].first = &r;
      if (r.cell.transport == "iperf3-shared") shared[r.cell.loss].second = &r;
    }
  for (const auto& [loss, pair] : shared) {
    if (!pair.first || !pair.second) continue;
    const double t0 = std::min(pair.first->m.series.front().first, pair.second->m.series.front().first);
    auto rates = [&](const Record& r, const std::string& file) {
      std::string dat;
      for (std::size_t i = 1; i < r.m.series.size(); ++i) {
        const auto& [ta, ba] = r.m.series[i - 1];
        const auto& [tb, bb] = r.m.series[i];
        if (tb > ta) dat += fmt::format("{:.3f} {:.1f}\n", (ta + tb) / 2 - t0, (bb - ba) * 8 / (tb - ta) / 1e6);
      }
      write_text(dir + "/" + file, dat);
    };
    const std::string fh = fmt::format("shared_hymig_loss{}.dat", loss), fi = fmt::format("shared_iperf3_loss{}.dat", loss);
    rates(*pair.first, fh);
    rates(*pair.second, fi);
    const std::string body = fmt::format(
        "set title 'Shared rate-limited link, {} % random loss: hymig joins an iperf3 TCP flow'\n"
        "set xlabel 'seconds'\nset ylabel 'Mbit/s'\nset grid\nset key outside right\nset yrange [0:*]\n"
        "plot {} using 1:2 with lines lw 2 title 'hymig', {} using 1:2 with lines lw 2 title 'iperf3 (TCP)'",
        loss, quoted(fh), quoted(fi));
    const std::string name = fmt::format("shared_link_loss{}", loss);
    if (render(dir, name, body, problem)) made.push_back(name);
  }
  return made;
}

}  // namespace hymig::bench
