#include "bench/suite/bench_options.hpp"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <sstream>

#include "bench/suite/peer.hpp"
#include "core/error.hpp"
#include "core/units.hpp"

namespace hymig::bench {
namespace {

namespace po = boost::program_options;

std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::uint64_t> sizes_of(const std::string& s, const char* what, bool allow_zero) {
  std::vector<std::uint64_t> out;
  for (const auto& item : split(s)) {
    if (allow_zero && item == "0") out.push_back(0);
    else out.push_back(allow_zero ? parse_rate(item, what) : parse_size(item, what));
  }
  if (out.empty()) throw Error(ErrorKind::usage, std::string(what) + " needs at least one value");
  return out;
}

std::vector<unsigned> percents_of(const std::string& s, const char* what) {
  std::vector<unsigned> out;
  for (const auto& item : split(s)) {
    unsigned v = 0;
    try {
      std::size_t used = 0;
      v = static_cast<unsigned>(std::stoul(item, &used));
      if (used != item.size() || v > 99) throw std::invalid_argument("range");
    } catch (const std::exception&) {
      throw Error(ErrorKind::usage, fmt::format("{}: '{}' is not a whole percentage 0..99", what, item));
    }
    out.push_back(v);
  }
  if (out.empty()) throw Error(ErrorKind::usage, std::string(what) + " needs at least one value");
  return out;
}

}  // namespace

std::optional<BenchOptions> parse_bench_options(int argc, char** argv) {
  BenchOptions o;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  po::options_description desc("options");
  // One option per line reads as the --help it prints.
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("quick", po::bool_switch(), "a small matrix that finishes in about a minute (256M; dirty 0 and 128M; 2 repetitions; peers capped at 3 s)")
      ("sizes", po::value<std::string>(), "image sizes, comma-separated (default 256M,1G)")
      ("dirty-rates", po::value<std::string>(), "rates the image is dirtied at, for hymig's transports (default 0,64M,256M; 0 = idle)")
      ("loss", po::value<std::string>(), "random loss levels in % (default 0; above 0 needs --netns or --shape-here)")
      ("transports", po::value<std::string>(), "which to run: hymig (default flags), hymig-lanes2 (--lanes 2), hymig-nozstd (--compress off), hymig-tcp (--bulk tcp), hymig-rdma, tcp-stream, memcpy, iperf3, udt (default: all but hymig-nozstd)")
      ("compressible", po::value<double>(), "hymig's images: this share (0..1) of each page compresses (default 0: random pages, as incompressible as the baselines' buffers)")
      ("reps", po::value<unsigned>(), "repetitions of every cell (default 3; medians with min-max are reported)")
      ("netns", po::value<std::string>(), "SRC,DST: even ranks enter network namespace SRC, odd ranks DST (as made by `ip netns add`)")
      ("rate-limit", po::value<std::string>(), "tc tbf rate on the sender's way out for the matrix, e.g. 1gbit (needs --netns or --shape-here)")
      ("shape-here", po::bool_switch(), "apply loss and rate rules in the ranks' current namespaces (a disposable lab guest)")
      ("bind", po::value<std::string>(), "address receivers listen on (default: loopback when a pair shares a host, else the host's address)")
      ("shared-link", po::bool_switch(), "also run the shared-link scenario: hymig and an iperf3 TCP flow at once on a rate-limited link")
      ("shared-rate", po::value<std::string>(), "the shared link's rate (default 1gbit), a tbf on the sender's way out; external:RATE names a bottleneck the caller set up elsewhere (a middle namespace: bench/run-suite.sh) and adds none")
      ("shared-loss", po::value<std::string>(), "loss levels for the shared-link scenario (default 0,1)")
      ("shared-size", po::value<std::string>(), "image hymig migrates in the shared-link scenario (default 512M)")
      ("shared-reps", po::value<unsigned>(), "runs of the shared-link scenario's together part per loss level (default 1; the headline share is their median, with min-max): one run's share moves by 0.1 between runs")
      ("shared-cc", po::value<std::string>(), "the congestion control of the iperf3 flow on the shared link (iperf3 -C): cubic (default: Linux's default, what a Debian node runs), bbr, reno..., or default = this kernel's net.ipv4.tcp_congestion_control")
      ("peer-cap-seconds", po::value<double>(), "stop a baseline or peer after this long and report its rate (default 8; 0 = never)")
      ("run-timeout", po::value<unsigned>(), "seconds one run may take before it counts as failed (default 180)")
      ("out", po::value<std::string>(), "output directory for results.csv, results.json, summary.csv, plots and report.md (default hymig-bench-out)")
      ("title", po::value<std::string>(), "a name for this run in the report (e.g. 'loopback', 'veth 10 Gbit')")
      ("no-warm-memory", po::bool_switch(), "do not touch and free each run's image size before it starts (on VMs whose host takes free memory back, the first touch costs whichever run gets it 2-4x)")
      ("no-plots", po::bool_switch(), "skip gnuplot (CSV, JSON and the report are still written)")
      ("hymig", po::value<std::string>(), "path of the hymig binary (default: beside hymig-bench, the build tree, PATH)")
      ("hymig-args", po::value<std::string>(), "extra arguments for every `hymig migrate`, space-separated")
      ("key-file", po::value<std::string>(), "the cluster key hymig's sessions use (default $HYMIG_KEY_FILE; else rank 0 makes a throwaway key and hands it to every rank)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << "usage: mpirun -np 2N hymig-bench [options]\n\n"
                 "Ranks pair up (0<->1, 2<->3, ...): the even rank sends, the odd rank receives. Every cell of\n"
                 "the matrix runs on all pairs at once; rank 0 gathers the results and writes CSV, JSON, plots\n"
                 "(PNG and SVG, with gnuplot) and a Markdown report. Baselines and peers move the same bytes\n"
                 "between the same two ranks in the same run: a raw TCP stream, memcpy, iperf3 and UDT.\n\n"
              << desc
              << "\nExamples:\n"
                 "  mpirun -np 2 hymig-bench --quick\n"
                 "  mpirun -np 2 hymig-bench --netns src,dst --loss 0,1,5,10 --shared-link\n"
                 "  mpirun -np 4 --hostfile hosts hymig-bench --sizes 4G --dirty-rates 0,1G\n"
                 "As root, OpenMPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
                 "(bench/run-suite.sh sets them).\n";
    return std::nullopt;
  }
  if (vm["quick"].as<bool>()) {
    o.quick = true;
    o.sizes = {256ull << 20};
    o.dirty_rates = {0, 128ull << 20};
    o.reps = 2;
    o.peer_cap_seconds = 3;
    o.shared_size = 256ull << 20;
    o.shared_seconds = 8;
    o.run_timeout_seconds = 120;
  }
  if (vm.count("sizes")) o.sizes = sizes_of(vm["sizes"].as<std::string>(), "--sizes", false);
  if (vm.count("dirty-rates")) o.dirty_rates = sizes_of(vm["dirty-rates"].as<std::string>(), "--dirty-rates", true);
  if (vm.count("loss")) o.losses = percents_of(vm["loss"].as<std::string>(), "--loss");
  if (vm.count("shared-loss")) o.shared_losses = percents_of(vm["shared-loss"].as<std::string>(), "--shared-loss");
  if (vm.count("reps")) o.reps = vm["reps"].as<unsigned>();
  if (o.reps == 0) throw Error(ErrorKind::usage, "--reps must be at least 1");
  if (vm.count("shared-reps")) o.shared_reps = vm["shared-reps"].as<unsigned>();
  if (o.shared_reps == 0 || o.shared_reps > 20) throw Error(ErrorKind::usage, "--shared-reps must be 1 to 20");
  if (vm.count("transports")) {
    o.transports = split(vm["transports"].as<std::string>());
    for (const auto& t : o.transports)
      if (std::find(all_peer_names().begin(), all_peer_names().end(), t) == all_peer_names().end())
        throw Error(ErrorKind::usage, "--transports: unknown '" + t + "'; valid: hymig, hymig-lanes2, hymig-nozstd, "
                                          "hymig-tcp, hymig-rdma, tcp-stream, memcpy, iperf3, udt");
  } else {
    for (const auto& t : all_peer_names())
      if (t != "hymig-nozstd") o.transports.push_back(t);
  }
  if (vm.count("compressible")) {
    o.compressible = vm["compressible"].as<double>();
    if (!(o.compressible >= 0 && o.compressible <= 1)) throw Error(ErrorKind::usage, "--compressible must be 0..1");
  }
  if (vm.count("netns")) {
    const auto ns = split(vm["netns"].as<std::string>());
    if (ns.size() != 2) throw Error(ErrorKind::usage, "--netns wants SRC,DST (two namespace names)");
    o.netns_sender = ns[0];
    o.netns_receiver = ns[1];
  }
  o.shape_here = vm["shape-here"].as<bool>();
  if (vm.count("rate-limit")) o.rate_limit = vm["rate-limit"].as<std::string>();
  if (vm.count("bind")) o.bind_host = vm["bind"].as<std::string>();
  o.shared_link = vm["shared-link"].as<bool>();
  if (vm.count("shared-rate")) o.shared_rate = vm["shared-rate"].as<std::string>();
  if (vm.count("shared-size")) o.shared_size = parse_size(vm["shared-size"].as<std::string>(), "--shared-size");
  if (vm.count("shared-cc")) {
    const std::string cc = vm["shared-cc"].as<std::string>();
    const bool name = !cc.empty() && cc.size() <= 16 && std::all_of(cc.begin(), cc.end(), [](unsigned char c) {
      return std::islower(c) || std::isdigit(c) || c == '_';
    });
    if (!name)
      throw Error(ErrorKind::usage,
                  "--shared-cc must name a TCP congestion control (cubic, bbr, reno...) or be default");
    o.shared_cc = cc == "default" ? "" : cc;
  }
  if (vm.count("peer-cap-seconds")) o.peer_cap_seconds = vm["peer-cap-seconds"].as<double>();
  if (o.peer_cap_seconds < 0) throw Error(ErrorKind::usage, "--peer-cap-seconds must be 0 or positive");
  if (vm.count("run-timeout")) o.run_timeout_seconds = vm["run-timeout"].as<unsigned>();
  if (o.run_timeout_seconds < 10) throw Error(ErrorKind::usage, "--run-timeout below 10 s leaves no room for a run");
  if (vm.count("out")) o.out_dir = vm["out"].as<std::string>();
  if (vm.count("title")) o.title = vm["title"].as<std::string>();
  if (vm.count("hymig")) o.hymig_path = vm["hymig"].as<std::string>();
  if (vm.count("hymig-args")) o.extra_hymig_args = vm["hymig-args"].as<std::string>();
  if (vm.count("key-file")) o.key_file = vm["key-file"].as<std::string>();
  o.plots = !vm["no-plots"].as<bool>();
  o.warm_memory = !vm["no-warm-memory"].as<bool>();

  // Loss and rate rules change a host's network: only where the benchmark was told that is fine.
  const bool lossy = std::any_of(o.losses.begin(), o.losses.end(), [](unsigned l) { return l > 0; });
  if ((lossy || !o.rate_limit.empty()) && !o.shaping())
    throw Error(ErrorKind::usage,
                "--loss above 0 and --rate-limit change the link: run the ranks in namespaces made for it "
                "(--netns SRC,DST; bench/run-suite.sh makes them) or, in a disposable lab guest, add --shape-here");
  if (o.shared_link && !o.shaping())
    throw Error(ErrorKind::usage, "--shared-link rate-limits the link: it needs --netns SRC,DST or --shape-here");
  return o;
}

}  // namespace hymig::bench
