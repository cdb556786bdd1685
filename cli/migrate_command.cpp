// hymig migrate: the source. Connects, agrees on transports, runs the engine, prints the report.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/command.hpp"
#include "cli/pacer_trace.hpp"
#include "cli/progress_line.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/units.hpp"
#include "engine/source_engine.hpp"
#include "policy/capabilities.hpp"
#include "policy/plan.hpp"
#include "policy/rate_memory.hpp"
#include "protocol/handshake.hpp"
#include "runtime/image_schemes.hpp"
#include "runtime/session_backends.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_reliable_channel.hpp"
#include "vm/libvirt_image.hpp"

namespace hymig::cli {
namespace {


void print_report(const MigrationReport& r, const std::string& format) {
  if (format == "json") std::cout << r.to_json().dump(2) << std::endl;
  else if (format == "text") std::cout << r.to_text() << std::flush;
}

// --fallback native: libvirt's own live migration of a domain hymig cannot move.
int migrate_natively(const std::string& domain, const std::string& uri, const std::string& dest_uri,
                     const std::string& migrate_uri, const std::string& why, const std::string& format) {
  std::cerr << "hymig migrate: " << why << "\nhymig migrate: --fallback native: libvirt's own live migration to " << dest_uri
            << "\n";
  nlohmann::json r = {{"outcome", "committed"}, {"migrated_by", "libvirt"}, {"image_kind", "vm"}, {"image_name", domain},
                      {"fallback_reason", why}, {"dest_uri", dest_uri}};
  int rc = kExitOk;
  try {
    r["libvirt_job"] = vm::migrate_domain_natively(domain, uri, dest_uri, migrate_uri);
  } catch (const Error& e) {
    r["outcome"] = "failed";
    r["error"] = e.what();
    std::cerr << "hymig migrate: error: " << e.what() << "\n";
    rc = kExitFailed;
  }
  if (format == "json") std::cout << r.dump(2) << std::endl;
  else if (format == "text")
    std::cout << (rc == kExitOk ? "migrated by libvirt's own live migration\n" : "libvirt's own migration failed\n") << std::flush;
  return rc;
}

struct CpuTimes {
  double user_s = 0, system_s = 0;
};
CpuTimes process_cpu_times() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return {s(u.ru_utime), s(u.ru_stime)};
}

int exit_code(const MigrationReport& r) {
  switch (r.outcome) {
    case Outcome::committed: return kExitOk;
    case Outcome::unknown: return kExitUnknown;
    case Outcome::failed: break;
  }
  return kExitFailed;
}

}  // namespace

int run_migrate(const std::vector<std::string>& args) {
  po::options_description desc("options");
  // One option a line reads as a table.
  // clang-format off
  desc.add_options()
      ("image", po::value<std::string>(), "what to migrate (see IMAGE SPECS below); this or --domain")
      ("domain", po::value<std::string>(), "a running libvirt domain to migrate live (see LIBVIRT DOMAINS below)")
      ("connect", po::value<std::string>(), "with --domain: the source's libvirt URI (default: libvirt's own default, e.g. qemu:///system)")
      ("fallback", po::value<std::string>()->default_value("none"), "with --domain: none, or native = a domain hymig cannot move (RAM not in a shared file, a device QEMU will not migrate) goes by libvirt's own live migration")
      ("dest-uri", po::value<std::string>(), "with --fallback native: the destination's libvirt URI (default qemu+tcp://HOST/system, HOST from --to)")
      ("migrate-uri", po::value<std::string>(), "with --fallback native: where libvirt's migration stream goes (default tcp://HOST, HOST from --to)")
      ("to", po::value<std::string>(), "HOST:PORT of the destination's `hymig serve`; required")
      ("bind", po::value<std::string>(), "leave from this local address (a node's fabric interface); default: the route's choice")
      ("bulk", po::value<std::string>()->default_value("auto"), "page stream transport: auto, udp, ud (RDMA unreliable datagrams) or tcp (everything over the reliable channel, the baseline)")
      ("reliable", po::value<std::string>()->default_value("auto"), "control and final-delta transport: auto, tcp or rc (RDMA reliable connection)")
      ("final-delta", po::value<std::string>()->default_value("auto"), "how the final delta travels over rc: write (RDMA WRITE into the destination's registered image, the faster in the lab), send (page messages), or auto (write; $HYMIG_FINAL_DELTA overrides). TCP always sends")
      ("lanes", po::value<std::string>()->default_value("auto"), "datagram lanes: N parallel channels, each with its own thread on both sides and its share of the pages (1-16); auto: what the link speed needs (~1 GB/s a lane), at most half the cores of the smaller side, at most 4 on a link of unknown speed")
      ("rate", po::value<std::string>()->default_value("auto"), "pace the page stream at R (256M = 256 MiB/s, 2gbit); auto starts where the last session to this peer ended (else from the link speed) and adapts to the receiver's reports")
      ("rate-memory", po::value<std::string>()->default_value("auto"), "FILE where the rate each peer carried is kept for the next session, or off; auto: $HYMIG_STATE_DIR/peer-rates.json, /var/lib/hymig/ as root, else ~/.local/state/hymig/")
      ("compress", po::value<std::string>()->default_value("auto"), "zstd compression of datagram pages: auto (only while the measured ratio and CPU say it moves pages faster: slow links, compressible memory), on (every page it shrinks by a quarter), off")
      ("downtime-ms", po::value<unsigned>()->default_value(300), "pause once the remaining pages are predicted to move within this many ms")
      ("max-rounds", po::value<unsigned>()->default_value(30), "pause after at most this many bulk rounds")
      ("timeout", po::value<double>()->default_value(10.0), "seconds the destination may stay silent before the migration fails")
      ("verify", po::value<std::string>()->default_value("full"), "full: both sides rehash the whole paused image; fast: use the hashes taken as pages moved")
      ("report", po::value<std::string>()->default_value("text"), "report on stdout: text, json or none")
      ("trace-pacer", po::value<std::string>(), "append one CSV line per feedback sample to FILE: what the destination reported and the pacer's rate, phase and link estimates (diagnosing a slow or unfair rate; columns in docs/protocol.md, \"Pacing\")")
      ("progress", po::value<std::string>()->default_value("auto"), "live progress on stderr: auto (a line, on a terminal), on, off, or json (one object per line, ~5 a second)")
      ("encrypt", po::value<std::string>()->default_value("on"), "on: the page stream is encrypted and authenticated (AES-GCM); off: authenticated only, pages in clear (exists to measure what encryption costs; control messages stay encrypted)");
  // clang-format on
  add_key_options(desc);
  po::variables_map vm;
  if (!parse_options(
          "migrate", "(--image SPEC | --domain NAME [--connect URI]) --to HOST:PORT [options]",
          std::string("IMAGE SPECS\n") + runtime::image_schemes().help() +
              "\nLIBVIRT DOMAINS\n"
              "  --domain NAME [--connect URI] migrates a running libvirt domain whose RAM is a shared file\n"
              "  (<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>). The destination\n"
              "  runs `hymig serve --libvirt`: its libvirt starts a paused copy waiting for the migration, hymig\n"
              "  moves the RAM while the guest runs here, then the device state (QEMU's own stream, RAM left\n"
              "  out); the copy is resumed there, persistent if the domain is persistent here, and the domain\n"
              "  is destroyed and undefined here. On any failure before that the guest runs on here.\n"
              "  Example: hymig migrate --domain web1 --to node7:7470\n" +
              "\nExit codes: 0 committed; 1 failed (the source image runs on, the destination discarded\n"
              "its copy); 2 usage error; 3 commit sent but not confirmed (the source stays paused).\n",
          desc, args, vm))
    return kExitOk;
  if (vm.count("image") == vm.count("domain"))
    throw Error(ErrorKind::usage, "give exactly one of --image SPEC (e.g. --image synthetic:size=1G) and --domain NAME");
  const bool domain = vm.count("domain") > 0;
  for (const char* o : {"connect", "dest-uri", "migrate-uri"})
    if (!domain && vm.count(o)) throw Error(ErrorKind::usage, std::string("--") + o + " goes with --domain");
  const std::string fallback = vm["fallback"].as<std::string>();
  if (fallback != "none" && fallback != "native") throw Error(ErrorKind::usage, "--fallback must be none or native");
  if (fallback == "native" && !domain) throw Error(ErrorKind::usage, "--fallback native goes with --domain");
  if (fallback == "none" && (vm.count("dest-uri") || vm.count("migrate-uri")))
    throw Error(ErrorKind::usage, "--dest-uri and --migrate-uri go with --fallback native");
  if (!vm.count("to")) throw Error(ErrorKind::usage, "--to HOST:PORT is required");
  const std::string format = vm["report"].as<std::string>();
  if (format != "text" && format != "json" && format != "none")
    throw Error(ErrorKind::usage, "--report must be text, json or none");
  const std::optional<FinalDeltaMethod> final_delta =
      final_delta_option(vm["final-delta"].as<std::string>(), std::getenv("HYMIG_FINAL_DELTA"));
  const std::string verify_text = vm["verify"].as<std::string>();
  if (verify_text != "full" && verify_text != "fast") throw Error(ErrorKind::usage, "--verify must be full or fast");
  const VerifyMode verify = verify_text == "fast" ? VerifyMode::fast : VerifyMode::full;
  const std::string progress = vm["progress"].as<std::string>();
  if (progress != "auto" && progress != "on" && progress != "off" && progress != "json")
    throw Error(ErrorKind::usage, "--progress must be auto, on, off or json");
  const auto timeout = timeout_option(vm, "timeout");
  // Opened before anything starts: a trace that cannot be written fails the command, not the session.
  std::optional<PacerTrace> trace;
  if (vm.count("trace-pacer")) {
    try {
      trace.emplace(vm["trace-pacer"].as<std::string>());
    } catch (const Error& e) {
      throw Error(ErrorKind::usage, e.what());
    }
  }
  if (vm["max-rounds"].as<unsigned>() == 0) throw Error(ErrorKind::usage, "--max-rounds must be at least 1");

  Preferences prefs;
  const std::string bulk = vm["bulk"].as<std::string>();
  if (bulk != "auto") prefs.bulk = parse_bulk_transport(bulk);
  const std::string reliable = vm["reliable"].as<std::string>();
  if (reliable != "auto") prefs.reliable = parse_reliable_transport(reliable);
  const std::string rate = vm["rate"].as<std::string>();
  if (rate != "auto") {
    prefs.rate_bytes_per_s = parse_rate(rate, "--rate");
    if (*prefs.rate_bytes_per_s < 65536) throw Error(ErrorKind::usage, "--rate below 64 KiB/s is not useful");
  }
  if (const std::string l = vm["lanes"].as<std::string>(); l != "auto") {
    char* end = nullptr;
    const unsigned long v = std::strtoul(l.c_str(), &end, 10);
    if (l.empty() || *end || v < 1 || v > kMaxLanes)
      throw Error(ErrorKind::usage, "--lanes must be auto or 1.." + std::to_string(kMaxLanes));
    prefs.lanes = static_cast<std::uint32_t>(v);
  }
  prefs.compression = parse_compression(vm["compress"].as<std::string>());
  std::optional<RateMemory> memory;
  if (const std::string m = vm["rate-memory"].as<std::string>(); m != "off") {
    const std::filesystem::path file = m == "auto" ? RateMemory::default_path() : std::filesystem::path(m);
    if (m != "auto" && (m.empty() || file.filename().empty()))
      throw Error(ErrorKind::usage, "--rate-memory must be auto, off or a file name");
    if (!file.empty()) memory.emplace(file);
  }
  const std::string encrypt = vm["encrypt"].as<std::string>();
  if (encrypt != "on" && encrypt != "off") throw Error(ErrorKind::usage, "--encrypt must be on or off");
  const ClusterKey key = load_key(vm);
  const std::string to = vm["to"].as<std::string>();
  const std::string to_host = split_host_port(to).host;  // a malformed address is a usage error before anything else happens

  std::unique_ptr<SourceImage> image;
  if (domain) {
    const std::string name = vm["domain"].as<std::string>();
    const std::string uri = vm.count("connect") ? vm["connect"].as<std::string>() : std::string();
    try {
      image = vm::open_libvirt_source_image(name, uri);
    } catch (const vm::NotMigratableByHymig& e) {
      if (fallback != "native") throw;
      const std::string host = to_host.find(':') != std::string::npos ? "[" + to_host + "]" : to_host;
      return migrate_natively(name, uri, vm.count("dest-uri") ? vm["dest-uri"].as<std::string>() : "qemu+tcp://" + host + "/system",
                              vm.count("migrate-uri") ? vm["migrate-uri"].as<std::string>() : "tcp://" + host, e.what(), format);
    }
  } else {
    const std::string spec = vm["image"].as<std::string>();
    image = runtime::image_schemes().open(spec);
  }

  // SIGINT/SIGTERM (an operator's Ctrl-C, `hymig drain` cancelling or timing out a migration): the
  // engine stops before the pause and the image runs on here; a paused image finishes its short
  // final phase instead, so a signal never leaves a guest paused.
  const std::atomic<bool>& cancel = stop_on_signals();
  const CpuTimes cpu_start = process_cpu_times();
  MigrationReport failed;
  failed.image_kind = image->kind();
  failed.image_name = image->name();
  failed.page_size = image->page_size();
  failed.pages_total = image->page_count();
  SecureSession session;
  Plan plan;
  std::optional<RateMemoryKey> memory_key;
  try {
    auto tcp = connect_tcp(to, timeout, vm.count("bind") ? vm["bind"].as<std::string>() : std::string());
    tcp->set_io_timeout(timeout);
    const int socket = tcp->socket_fd();
    const std::string peer_host = tcp->peer_host();
    const Capabilities local = probe_capabilities(tcp->peer_host(), tcp->local_host());
    session = open_secure_session(std::move(tcp), socket, Role::source, key, std::chrono::steady_clock::now() + timeout);
    session.peer = exchange_hello(*session.channel, Role::source, to_json(local), timeout);
    const Capabilities peer = capabilities_from_json(session.peer.caps);
    plan = choose_plan(local, peer, prefs);
    if (memory && plan.bulk != BulkTransport::tcp && !prefs.rate_bytes_per_s) {
      memory_key = RateMemoryKey{peer_host, std::string(to_string(plan.bulk)), plan.lanes};
      std::string warning;
      if (auto r = memory->recall(*memory_key, std::chrono::system_clock::now(), &warning)) {
        prefs.remembered = RememberedRate{r->bytes_per_s, r->age_s};
        plan = choose_plan(local, peer, prefs);
      }
      if (!warning.empty()) std::cerr << "hymig migrate: warning: " << warning << "\n";
    }
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::usage) throw;
    failed.error = e.what();
    std::cerr << "hymig migrate: error: " << failed.error << "\n";
    print_report(failed, format);
    return kExitFailed;
  }

  ReliableChannel& rel = *session.channel;
  SourceOptions opts;
  opts.secrets = &session.secrets;
  opts.protection = encrypt == "on" ? DatagramProtection::aead : DatagramProtection::mac;
  opts.lanes = plan.lanes;
  opts.compression = plan.compression;
  opts.bulk = plan.bulk;
  opts.reliable = plan.reliable;
  // The session's lanes and its move to RC: one bundle, sharing the RDMA device between them.
  const runtime::SourceBackends backends =
      runtime::source_backends(plan.bulk, rel.local_host(), plan.datagram_bytes, timeout);
  opts.connect_reliable = backends.connect_rc;
  opts.datagram_bytes = plan.datagram_bytes;
  opts.initial_rate = plan.initial_rate_bytes_per_s;
  opts.fixed_rate = prefs.rate_bytes_per_s.value_or(0);
  opts.downtime_ms = vm["downtime-ms"].as<unsigned>();
  opts.max_rounds = vm["max-rounds"].as<unsigned>();
  opts.peer_timeout = timeout;
  opts.verify = verify;
  opts.final_delta = final_delta;
  const bool terminal = progress == "on" || (progress == "auto" && ::isatty(STDERR_FILENO));
  ProgressLine line(progress == "json" ? ProgressLine::Mode::json
                    : terminal         ? ProgressLine::Mode::terminal
                                       : ProgressLine::Mode::off);
  opts.on_progress = [&](const LiveProgress& p) { line.show(p); };
  if (trace)
    opts.on_pacer_sample = [&](std::uint32_t round, const FeedbackSample& s, const PacerState& st) {
      trace->add(round, s, st);
    };
  opts.cancel = &cancel;

  MigrationReport report = run_source(rel, backends.datagrams, *image, opts);
  const CpuTimes cpu_end = process_cpu_times();
  report.cpu_user_s = cpu_end.user_s - cpu_start.user_s;
  report.cpu_system_s = cpu_end.system_s - cpu_start.system_s;
  line.clear();
  if (trace) {
    try {
      trace->close();
    } catch (const Error& e) {
      std::cerr << "hymig migrate: warning: " << e.what() << "\n";
    }
  }
  report.plan = to_json(plan);
  if (!report.committed()) std::cerr << "hymig migrate: error: " << report.error << "\n";
  if (!report.cleanup_error.empty())
    std::cerr << "hymig migrate: warning: committed, but the source copy could not be ended: " << report.cleanup_error
              << " (it stays paused: end it by hand, never resume it)\n";
  if (report.committed() && memory_key) {
    // What the stream carried in its longest rounds: the next session to this peer starts there.
    double best = 0;
    for (const RoundStats& r : report.round_stats)
      if (r.seconds >= 0.05 && r.bytes >= (8u << 20)) best = std::max(best, static_cast<double>(r.bytes) / r.seconds);
    if (best > 0)
      if (const std::string why = memory->remember(*memory_key, static_cast<std::uint64_t>(best), std::chrono::system_clock::now());
          !why.empty())
        std::cerr << "hymig migrate: warning: the rate to this peer is not remembered: " << why << "\n";
  }
  print_report(report, format);
  return exit_code(report);
}

}  // namespace hymig::cli
