// hymig migrate: the source. Connects, agrees on transports, runs the engine, prints the report.
#include <unistd.h>

#include <iostream>

#include "cli/command.hpp"
#include "cli/progress_line.hpp"
#include "policy/capabilities.hpp"
#include "policy/plan.hpp"
#include "transport/error.hpp"
#include "transport/handshake.hpp"
#include "transport/image_spec.hpp"
#include "transport/source_engine.hpp"
#include "transport/units.hpp"
#include "udp/socket_address.hpp"
#include "udp/tcp_connect.hpp"
#include "udp/tcp_reliable_channel.hpp"
#include "udp/udp_datagram_channel.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "vm/vm_image.hpp"

namespace hymig::cli {
namespace {

void print_report(const MigrationReport& r, const std::string& format) {
  if (format == "json") std::cout << r.to_json().dump(2) << std::endl;
  else if (format == "text") std::cout << r.to_text() << std::flush;
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
  desc.add_options()
      ("image", po::value<std::string>(), "what to migrate (see IMAGE SPECS below); required")
      ("to", po::value<std::string>(), "HOST:PORT of the destination's `hymig serve`; required")
      ("bind", po::value<std::string>(), "leave from this local address (a node's fabric interface); default: the route's choice")
      ("bulk", po::value<std::string>()->default_value("auto"), "page stream transport: auto, udp, ud (RDMA unreliable datagrams) or tcp (everything over the reliable channel, the baseline)")
      ("reliable", po::value<std::string>()->default_value("auto"), "control and final-delta transport: auto, tcp or rc (RDMA reliable connection)")
      ("rate", po::value<std::string>()->default_value("auto"), "pace the page stream at R (256M = 256 MiB/s, 2gbit); auto adapts to the receiver's reports")
      ("downtime-ms", po::value<unsigned>()->default_value(300), "pause once the remaining pages are predicted to move within this many ms")
      ("max-rounds", po::value<unsigned>()->default_value(30), "pause after at most this many bulk rounds")
      ("timeout", po::value<double>()->default_value(10.0), "seconds the destination may stay silent before the migration fails")
      ("verify", po::value<std::string>()->default_value("full"), "full: both sides rehash the whole paused image; fast: use the hashes taken as pages moved")
      ("report", po::value<std::string>()->default_value("text"), "report on stdout: text, json or none")
      ("progress", po::value<std::string>()->default_value("auto"), "live progress on stderr: auto (a line, on a terminal), on, off, or json (one object per line, ~5 a second)")
      ("secret-file", po::value<std::string>(), "shared secret proving to the destination who we are");
  po::variables_map vm;
  if (!parse_options("migrate", "--image SPEC --to HOST:PORT [options]",
                     std::string("IMAGE SPECS\n") + image_spec_help() + vm::vm_image_spec_help() +
                         "\nExit codes: 0 committed; 1 failed (the source image runs on, the destination discarded\n"
                         "its copy); 2 usage error; 3 commit sent but not confirmed (the source stays paused).\n",
                     desc, args, vm))
    return kExitOk;
  if (!vm.count("image")) throw Error(ErrorKind::usage, "--image is required (e.g. --image synthetic:size=1G)");
  if (!vm.count("to")) throw Error(ErrorKind::usage, "--to HOST:PORT is required");
  const std::string format = vm["report"].as<std::string>();
  if (format != "text" && format != "json" && format != "none")
    throw Error(ErrorKind::usage, "--report must be text, json or none");
  const std::string verify = vm["verify"].as<std::string>();
  if (verify != "full" && verify != "fast") throw Error(ErrorKind::usage, "--verify must be full or fast");
  const std::string progress = vm["progress"].as<std::string>();
  if (progress != "auto" && progress != "on" && progress != "off" && progress != "json")
    throw Error(ErrorKind::usage, "--progress must be auto, on, off or json");
  const auto timeout = std::chrono::milliseconds(static_cast<long>(vm["timeout"].as<double>() * 1000));
  if (timeout.count() <= 0) throw Error(ErrorKind::usage, "--timeout must be positive");
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
  const auto secret = read_secret(vm);
  const std::string to = vm["to"].as<std::string>();
  split_host_port(to);  // a malformed address is a usage error before anything else happens

  const std::string spec = vm["image"].as<std::string>();
  auto image = vm::is_vm_image_spec(spec) ? vm::open_vm_source_image(spec) : open_source_image(spec);

  MigrationReport failed;
  failed.image_kind = image->kind();
  failed.image_name = image->name();
  failed.page_size = image->page_size();
  failed.pages_total = image->page_count();
  std::unique_ptr<TcpReliableChannel> rel;
  Plan plan;
  try {
    rel = connect_tcp(to, timeout, vm.count("bind") ? vm["bind"].as<std::string>() : std::string());
    rel->set_io_timeout(timeout);
    const Capabilities local = probe_capabilities(rel->peer_host(), rel->local_host());
    const auto peer = handshake(*rel, "source", to_json(local), secret, timeout);
    plan = choose_plan(local, capabilities_from_json(peer.caps), prefs);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::usage) throw;
    failed.error = e.what();
    std::cerr << "hymig migrate: error: " << failed.error << "\n";
    print_report(failed, format);
    return kExitFailed;
  }

  SourceOptions opts;
  opts.bulk = plan.bulk == BulkTransport::tcp ? "tcp" : "udp";
  opts.reliable = std::string(to_string(plan.reliable));
  opts.connect_reliable = [&](const std::string& endpoint) {
    return verbs::connect_rc(rel->local_host(), endpoint, timeout);
  };
  opts.datagram_bytes = plan.datagram_bytes;
  opts.initial_rate = plan.initial_rate_bytes_per_s;
  opts.fixed_rate = prefs.rate_bytes_per_s.value_or(0);
  opts.downtime_ms = vm["downtime-ms"].as<unsigned>();
  opts.max_rounds = vm["max-rounds"].as<unsigned>();
  opts.peer_timeout = timeout;
  opts.verify = verify;
  const bool terminal = progress == "on" || (progress == "auto" && ::isatty(STDERR_FILENO));
  ProgressLine line(progress == "json" ? ProgressLine::Mode::json
                    : terminal         ? ProgressLine::Mode::terminal
                                       : ProgressLine::Mode::off);
  opts.on_progress = [&](const LiveProgress& p) { line.show(p); };

  DatagramFactory datagrams = [&]() -> std::unique_ptr<DatagramChannel> {
    if (plan.bulk == BulkTransport::rdma_ud) return verbs::UdDatagramChannel::open(rel->local_host(), plan.datagram_bytes);
    return UdpDatagramChannel::open(rel->local_host(), plan.datagram_bytes);
  };
  MigrationReport report = run_source(*rel, datagrams, *image, opts);
  line.clear();
  report.plan = to_json(plan);
  if (!report.committed()) std::cerr << "hymig migrate: error: " << report.error << "\n";
  print_report(report, format);
  return exit_code(report);
}

}  // namespace hymig::cli
