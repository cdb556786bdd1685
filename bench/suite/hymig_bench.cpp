// hymig-bench: the MPI-launched benchmark suite. Ranks pair up (0<->1, 2<->3, ...); every pair
// runs the matrix (size x dirty rate x loss x transport x repetition) at the same time; rank 0
// gathers the runs and writes CSV, JSON, plots and a Markdown report. See --help.
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "bench/suite/bench_options.hpp"
#include "bench/suite/link_shaper.hpp"
#include "bench/suite/memory_warmer.hpp"
#include "bench/suite/mpi_world.hpp"
#include "bench/suite/outputs.hpp"
#include "bench/suite/pair_runner.hpp"
#include "bench/suite/peer.hpp"
#include "bench/suite/shared_link.hpp"
#include "bench/suite/summary.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "policy/link_probe.hpp"
#include "security/cluster_key.hpp"

namespace hymig::bench {
namespace {

// hymig's sessions are authenticated: every rank's hymig uses one cluster key. --key-file (or
// $HYMIG_KEY_FILE) names a key every rank can read; without either, rank 0 makes a throwaway key and
// hands its text to every rank, which writes it (0600) into its own work directory.
std::string cluster_key_for_every_rank(const MpiWorld& world, const std::string& option, const std::string& work) {
  const char* env = std::getenv(kKeyFileEnv);
  if (!option.empty()) return option;
  if (env && *env) return env;
  std::string text;
  if (world.rank() == 0) {
    const std::string made = work + "/cluster.key.0";
    std::filesystem::remove(made);
    write_new_cluster_key(made);
    std::ifstream in(made);
    std::getline(in, text);
  }
  text = world.broadcast(text);
  const std::string path = work + "/cluster.key";
  std::filesystem::remove(path);
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorKind::io, "cannot write " + path);
    const std::string line = text + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!ok) throw Error(ErrorKind::io, "cannot write " + path);
  }
  return path;
}


// The first IPv4 address of an interface that is administratively up and not loopback, in this
// thread's namespace. Not probe_links(): its `up` also wants a carrier, which a veth made a moment
// ago (by the suite's own script) may not report yet.
std::string first_global_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) throw_errno("getifaddrs");
  std::string found;
  for (ifaddrs* a = list; a && found.empty(); a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_LOOPBACK) || !(a->ifa_flags & IFF_UP))
      continue;
    SocketAddress s;
    std::memcpy(&s.storage, a->ifa_addr, sizeof(sockaddr_in));
    s.length = sizeof(sockaddr_in);
    found = numeric_host(s);
  }
  ::freeifaddrs(list);
  if (found.empty()) throw Error(ErrorKind::io, "no IPv4 address on any interface that is up (pass --bind ADDR)");
  return found;
}

std::string first_line_of(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) {
      auto v = line.substr(line.find(':') + 1);
      return v.substr(v.find_first_not_of(" \t"));
    }
  return "?";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// Every rank says whether its step worked; if one did not, all stop (rank 0 prints why).
void agree(const MpiWorld& world, const std::string& my_error) {
  if (!my_error.empty()) std::cerr << fmt::format("hymig-bench: rank {}: {}\n", world.rank(), my_error);
  if (!world.all(my_error.empty())) throw Error(ErrorKind::io, "a rank could not set up (see above)");
}

struct Roles {
  bool loss = false, rate = false;  // this rank applies the loss / rate rules
};

Roles shaping_roles(const MpiWorld& world, const BenchOptions& o) {
  // In the lab's two namespaces all senders share one and all receivers the other: one rank each
  // applies the rules. With --shape-here every rank shapes its own namespace.
  if (!o.netns_receiver.empty()) return {world.rank() == 1, world.rank() == 0};
  if (o.shape_here) return {!world.is_sender(), world.is_sender()};
  return {};
}

int run(MpiWorld& world, int argc, char** argv) {
  std::optional<BenchOptions> parsed;
  try {
    parsed = parse_bench_options(argc, argv);
  } catch (const Error& e) {
    if (world.rank() == 0) std::cerr << "hymig-bench: " << e.what() << "\n";
    return 2;
  }
  if (!parsed) return 0;
  const BenchOptions& o = *parsed;
  if (world.size() < 2 || world.size() % 2) {
    if (world.rank() == 0)
      std::cerr << "hymig-bench: needs an even number of ranks (pairs of sender and receiver); got " << world.size()
                << ": run it as `mpirun -np 2 hymig-bench ...`\n";
    return 2;
  }
  const bool sender = world.is_sender();
  const int pair = world.rank() / 2;

  // Placement: into the namespaces, then the address the receiver listens on.
  std::string err;
  try {
    if (!o.netns_sender.empty()) enter_network_namespace(sender ? o.netns_sender : o.netns_receiver);
  } catch (const std::exception& e) {
    err = e.what();
  }
  agree(world, err);
  const std::string host = world.processor_name();
  std::string bind_host;
  if (sender) {
    world.send(world.partner(), host);
    bind_host = world.receive(world.partner());
  } else {
    const std::string partner_host = world.receive(world.partner());
    try {
      bind_host = !o.bind_host.empty() ? o.bind_host
                  : !o.netns_receiver.empty() || partner_host != host ? first_global_ipv4()
                                                                      : "127.0.0.1";
    } catch (const std::exception& e) {
      err = e.what();
    }
    world.send(world.partner(), bind_host);
  }
  agree(world, err);

  const std::string work = fmt::format("{}/work/rank{}", o.out_dir, world.rank());
  std::error_code ec;
  std::filesystem::create_directories(work, ec);
  agree(world, ec ? "cannot create " + work + ": " + ec.message() : "");
  const Tools tools = find_tools(o.hymig_path);
  const std::string key_file = cluster_key_for_every_rank(world, o.key_file, work);

  const Roles roles = shaping_roles(world, o);
  LinkShaper shaper;
  std::string egress;
  if (roles.rate) {
    try {
      egress = probe_path(bind_host).interface;
      if (egress.empty()) err = "no interface on this host routes to " + bind_host;
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  agree(world, err);
  auto shape = [&](unsigned loss, const std::string& rate) {
    std::string e;
    try {
      if (roles.loss) shaper.set_loss(loss);
      // "external:R": the link is limited outside the ranks (a middle namespace): add nothing.
      if (roles.rate) shaper.set_rate(egress, rate.empty() || rate.rfind("external:", 0) == 0 ? "off" : rate);
    } catch (const std::exception& ex) {
      e = ex.what();
    }
    agree(world, e);
  };

  if (world.rank() == 0)
    std::cout << fmt::format("hymig-bench: {} pair(s); receivers listen on {}{}; output in {}\n", world.pairs(),
                             bind_host, o.netns_sender.empty() ? "" : " (namespaces " + o.netns_sender + " -> " + o.netns_receiver + ")",
                             o.out_dir)
              << std::flush;

  std::vector<Record> mine;
  auto log = [&](const Record& r) {
    std::cout << fmt::format("[pair {}] {:<10} {:>5} dirty {:>5}/s loss {:>2}% rep {}: {}", r.pair, r.cell.transport,
                             size_label(r.cell.size), size_label(r.cell.dirty_rate), r.cell.loss, r.cell.rep,
                             to_string(r.m.status));
    if (r.m.status == Measurement::Status::ok) {
      std::cout << fmt::format("  {:.3f} Gbit/s  {:.2f} s", r.m.gbps(), r.m.seconds);
      if (r.m.downtime_ms >= 0) std::cout << fmt::format("  downtime {:.0f} ms  rounds {}", r.m.downtime_ms, r.m.rounds);
      if (r.m.capped) std::cout << "  (capped)";
      if (!r.m.note.empty()) std::cout << "  " << r.m.note;
    } else {
      std::cout << "  " << r.m.note;
    }
    std::cout << std::endl;
  };

  RunSpec base;
  base.bind_host = bind_host;
  base.work_dir = work;
  base.timeout = std::chrono::seconds(o.run_timeout_seconds);
  base.peer_cap_seconds = o.peer_cap_seconds;
  base.extra_hymig_args = o.extra_hymig_args;
  base.key_file = key_file;
  base.compressible = o.compressible;

  std::vector<std::unique_ptr<Peer>> peers;
  for (const auto& t : o.transports) peers.push_back(make_peer(t, tools));

  // Each rank warms its host for the image it will hold (sender) or receive (receiver), then the
  // pair starts together. The warm memory is freed right before the run takes it again.
  const auto warm_for = [&](std::uint64_t size) {
    if (o.warm_memory) {
      const std::uint64_t bytes = size + size / 8 + (64ull << 20);
      // Slower than ~2 GB/s: the host had taken much of it back (warm memory runs at ~10 GB/s).
      if (const double rate = warm_memory(bytes); rate > 0 && rate < 2e9)
        std::cout << fmt::format("[rank {}] warmed {} at {:.2f} GB/s: the host had taken memory back", world.rank(),
                                 size_label(bytes), rate / 1e9)
                  << std::endl;
    }
    world.barrier();
  };
  for (unsigned loss : o.losses) {
    shape(loss, o.rate_limit);
    for (auto size : o.sizes)
      for (auto dirty : o.dirty_rates) {
        const auto applies = [&](const Peer& peer) {
          return (!dirty || peer.handles_dirty()) && (!loss || peer.uses_network());
        };
        // One unmeasured run first: on these VMs the first process to touch memory the host took
        // back pays for faulting it in again (a 2 GiB run at half speed), and that was always the
        // first transport of the cell.
        if (auto first = std::find_if(peers.begin(), peers.end(), [&](const auto& p) { return applies(*p); });
            first != peers.end()) {
          RunSpec spec = base;
          spec.cell = {(*first)->name(), size, dirty, loss, 0};
          warm_for(size);
          if (auto m = run_on_pair(world, **first, spec); m && world.rank() == 0)
            std::cout << fmt::format("[pair {}] warm-up run ({}): {}", pair, (*first)->name(), to_string(m->status)) << std::endl;
        }
        // And the order rotates per repetition, so no transport always runs right after another.
        for (unsigned rep = 0; rep < o.reps; ++rep)
          for (std::size_t k = 0; k < peers.size(); ++k) {
            Peer& peer = *peers[(k + rep) % peers.size()];
            if (!applies(peer)) continue;
            RunSpec spec = base;
            spec.cell = {peer.name(), size, dirty, loss, rep};
            warm_for(size);
            if (auto m = run_on_pair(world, peer, spec)) {
              mine.push_back({pair, "matrix", spec.cell, *m});
              log(mine.back());
            }
          }
      }
  }
  if (o.shared_link)
    for (unsigned loss : o.shared_losses) {
      shape(loss, o.shared_rate);
      RunSpec spec = base;
      spec.cell = {"shared", o.shared_size, 0, loss, 0};
      spec.tcp_congestion = o.shared_cc;
      for (auto& r : run_shared_link(world, tools, spec, o.shared_seconds, pair, o.shared_reps)) {
        mine.push_back(r);
        log(r);
      }
    }
  shape(0, "");

  // Gather at rank 0.
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : mine) out.push_back(to_json(r));
  const auto all = world.gather(out.dump());
  const auto hosts = world.gather(host);
  if (world.rank() != 0) return 0;

  std::vector<Record> records;
  for (const auto& s : all)
    for (const auto& j : nlohmann::json::parse(s)) records.push_back(record_from_json(j));
  const auto rows = summarize(records);
  utsname u{};
  ::uname(&u);
  nlohmann::json meta = {
      {"title", o.title},
      {"date", utc_now()},
      {"command", o.command_line},
      {"warm_memory", o.warm_memory},
      {"ranks", world.size()},
      {"pairs", world.pairs()},
      {"hosts", hosts},
      {"kernel", std::string(u.release)},
      {"cpu", first_line_of("/proc/cpuinfo", "model name")},
      {"cores", std::thread::hardware_concurrency()},
      {"memory", first_line_of("/proc/meminfo", "MemTotal")},
      {"placement",
       o.netns_sender.empty()
           ? (bind_host == "127.0.0.1" ? std::string("loopback (both ranks of a pair on one host)")
                                       : "receivers listen on " + bind_host)
           : fmt::format("network namespaces {} (senders) and {} (receivers, {}){}", o.netns_sender, o.netns_receiver,
                         bind_host, o.rate_limit.empty() ? "" : ", tbf " + o.rate_limit)},
      {"reps", o.reps},
      {"peer_cap_seconds", o.peer_cap_seconds},
      {"shared_rate", o.shared_rate},
      {"shared_cc", o.shared_cc},
      {"tools", tools.to_json()}};
  const auto headlines = headline_ratios(rows, records, o.shared_rate, o.shared_cc);
  std::vector<std::string> plots;
  if (o.plots) {
    std::string problem;
    plots = write_plots(o.out_dir, rows, records, problem);
    if (!problem.empty()) {
      meta["plot_problem"] = problem;
      std::cerr << "hymig-bench: " << problem << "\n";
    }
  }
  write_csv(o.out_dir, records, rows);
  write_json(o.out_dir, meta, records, rows, headlines);
  write_markdown(o.out_dir, meta, rows, headlines, plots);

  std::cout << "\nheadline ratios:\n";
  for (const auto& h : headlines)
    std::cout << fmt::format("  {:<58} {:8.3f}   {}\n", h.value("what", ""), h.value("value", 0.0), h.value("detail", ""));
  std::cout << fmt::format("\nwrote {0}/results.csv, {0}/summary.csv, {0}/results.json, {0}/report.md and {1} plot(s)\n",
                           o.out_dir, plots.size());
  // hymig failing a run is a defect to look at; a peer that could not run is only a note.
  for (const auto& r : records)
    if (r.m.status == Measurement::Status::failed && r.cell.transport.find("hymig") != std::string::npos) {
      std::cerr << "hymig-bench: hymig failed a run: " << r.cell.transport << " " << size_label(r.cell.size)
                << " loss " << r.cell.loss << "%: " << r.m.note << "\n";
      return 1;
    }
  return 0;
}

}  // namespace
}  // namespace hymig::bench

int main(int argc, char** argv) {
  hymig::bench::MpiWorld world(argc, argv);
  try {
    return hymig::bench::run(world, argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "hymig-bench: rank " << world.rank() << ": " << e.what() << "\n";
    return 1;
  }
}
