// hymig serve: the destination daemon. Serves migrations one after another; a client that sends
// garbage, stalls or vanishes costs at most --timeout and never the daemon.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "policy/capabilities.hpp"
#include "transport/destination_engine.hpp"
#include "transport/error.hpp"
#include "transport/file_image.hpp"
#include "transport/handshake.hpp"
#include "udp/tcp_listener.hpp"
#include "udp/tcp_reliable_channel.hpp"
#include "udp/udp_datagram_channel.hpp"
#include "verbs/rc_listener.hpp"
#include "verbs/ud_datagram_channel.hpp"
#include "vm/libvirt_image.hpp"
#include "vm/vm_image.hpp"

namespace hymig::cli {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

void log_line(const std::string& s) { std::cerr << "hymig serve: " << s << std::endl; }

}  // namespace

// The RC listener a session moves to, one per session on the address the source connected to.
class RcAcceptor final : public ReliableAcceptor {
 public:
  explicit RcAcceptor(std::unique_ptr<verbs::RcListener> listener) : listener_(std::move(listener)) {}
  std::string endpoint() const override { return listener_->endpoint(); }
  std::unique_ptr<ReliableChannel> accept(std::chrono::milliseconds timeout) override {
    return listener_->accept(timeout);
  }

 private:
  std::unique_ptr<verbs::RcListener> listener_;
};

int run_serve(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()
      ("listen", po::value<std::string>()->default_value("0.0.0.0:7470"), "HOST:PORT to accept sources on (port 0: any free port)")
      ("store", po::value<std::string>()->default_value("/var/lib/hymig/images"), "directory where file images land (created if missing)")
      ("vm-qmp", po::value<std::string>(), "QMP socket of the QEMU that receives a VM (started with -incoming defer); without it VM images are refused")
      ("libvirt", po::bool_switch(), "receive libvirt domains (the source ran `hymig migrate --domain`) into this host's libvirt")
      ("connect", po::value<std::string>(), "with --libvirt: this host's libvirt URI (default: libvirt's own default, e.g. qemu:///system)")
      ("vm-runtime-dir", po::value<std::string>()->default_value("/run/hymig"), "with --libvirt: directory for the QMP sockets hymig adds to incoming domains")
      ("once", po::bool_switch(), "exit after one session: 0 if it committed, 1 otherwise")
      ("timeout", po::value<double>()->default_value(10.0), "seconds a source may stay silent before its session is dropped")
      ("secret-file", po::value<std::string>(), "shared secret: sources must prove they hold the same file");
  po::variables_map vm;
  if (!parse_options("serve", "[--listen HOST:PORT] [--store DIR] [--vm-qmp PATH | --libvirt [--connect URI]] [--once] [--timeout SEC] [--secret-file FILE]",
                     "A file image arrives as STORE/.NAME.SESSION.part and is renamed to STORE/NAME only once both\n"
                     "sides verified the digest and the source said commit; on any failure it is deleted.\n"
                     "Synthetic images are received into memory and dropped after verification.\n"
                     "\n"
                     "A VM (the source ran `hymig migrate --image qmp:...`) lands in the QEMU whose QMP socket is\n"
                     "--vm-qmp PATH. Start that QEMU before the migration, with the source's machine options,\n"
                     "the same RAM size in a shared file and -incoming defer, e.g.\n"
                     "  qemu-system-x86_64 ... -object memory-backend-file,id=pc.ram,size=256M,\\\n"
                     "    mem-path=/dev/shm/guest.ram,share=on -machine memory-backend=pc.ram \\\n"
                     "    -qmp unix:PATH,server=on,wait=off -incoming defer\n"
                     "hymig writes the guest's RAM into that file, has QEMU load the device state the source sent\n"
                     "after the RAM verified, resumes the guest, then answers committed (x-ignore-shared is off\n"
                     "again afterwards). A session that fails after the checks passed kills that QEMU and deletes\n"
                     "its RAM file; the guest runs on at the source. Each session needs a fresh QEMU.\n"
                     "\n"
                     "A libvirt domain (the source ran `hymig migrate --domain NAME`) lands in this host's libvirt\n"
                     "with --libvirt: it starts a paused copy of the domain from the source's XML, waiting for the\n"
                     "migration (-incoming defer, plus a QMP socket for hymig in --vm-runtime-dir; the copy is marked\n"
                     "tainted by libvirt for that), fills its RAM file, loads the device state, defines it persistent\n"
                     "if it was at the source and resumes it. A session that fails destroys the copy; a domain that\n"
                     "already runs here, or another domain of that name, is refused.\n",
                     desc, args, vm))
    return kExitOk;

  const auto timeout = std::chrono::milliseconds(static_cast<long>(vm["timeout"].as<double>() * 1000));
  if (timeout.count() <= 0) throw Error(ErrorKind::usage, "--timeout must be positive");
  const auto secret = read_secret(vm);
  const std::string store = vm["store"].as<std::string>();
  const bool once = vm["once"].as<bool>();
  const std::string vm_qmp = vm.count("vm-qmp") ? vm["vm-qmp"].as<std::string>() : std::string();
  const bool libvirt = vm["libvirt"].as<bool>();
  if (!libvirt && vm.count("connect")) throw Error(ErrorKind::usage, "--connect goes with --libvirt");
  vm::LibvirtTargetOptions lv;
  lv.uri = vm.count("connect") ? vm["connect"].as<std::string>() : std::string();
  lv.runtime_dir = vm["vm-runtime-dir"].as<std::string>();
  if (lv.runtime_dir.empty() || lv.runtime_dir[0] != '/') throw Error(ErrorKind::usage, "--vm-runtime-dir must be an absolute path");

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  TcpListener listener = TcpListener::listen(vm["listen"].as<std::string>());
  log_line("listening on " + listener.local_address());

  while (!g_stop) {
    auto rel = listener.accept(std::chrono::milliseconds(250));
    if (!rel) continue;
    const std::string peer = rel->peer_host();
    rel->set_io_timeout(timeout);
    DestinationReport rep;
    try {
      handshake(*rel, "destination", to_json(probe_capabilities(peer, rel->local_host())), secret, timeout);
      ReceiverDatagramFactory datagrams = [&](const Notify& n) -> std::unique_ptr<DatagramChannel> {
        if (n.bulk == "ud") return verbs::UdDatagramChannel::open(rel->local_host());
        return UdpDatagramChannel::open(rel->local_host());
      };
      TargetFactory targets = [&](const Notify& n) -> std::unique_ptr<TargetImage> {
        if (n.image_kind == "synthetic") return make_memory_target(n.image_bytes);
        if (n.image_kind == "vm" && !n.vm_definition.empty()) {
          if (!libvirt)
            throw Error(ErrorKind::usage, "this daemon receives no libvirt domain: start `hymig serve --libvirt [--connect URI]`");
          return vm::open_libvirt_target(lv, n);
        }
        if (n.image_kind == "vm") {
          if (vm_qmp.empty())
            throw Error(ErrorKind::usage, "this daemon receives no VM: start `hymig serve --vm-qmp PATH` with the QMP socket "
                                          "of a destination QEMU waiting in -incoming defer");
          return vm::open_vm_target(vm_qmp, n);
        }
        if (n.image_kind != "file")
          throw Error(ErrorKind::refused, "this daemon cannot receive '" + n.image_kind + "' images yet");
        std::error_code ec;
        std::filesystem::create_directories(store, ec);
        if (ec) throw Error(ErrorKind::io, "cannot create the store '" + store + "': " + ec.message());
        return make_file_target(store, n.image_name, n.session, n.image_bytes);
      };
      DestinationOptions dopts;
      dopts.peer_timeout = timeout;
      dopts.make_reliable = [&](const Notify&) -> std::unique_ptr<ReliableAcceptor> {
        return std::make_unique<RcAcceptor>(verbs::RcListener::open(rel->local_host()));
      };
      rep = run_destination(*rel, datagrams, targets, dopts);
    } catch (const std::exception& e) {
      rep.error = e.what();
      send_abort_quietly(*rel, e.what());
    }
    const std::string id = fmt::format("{:016x}", rep.session);
    if (rep.committed)
      log_line(fmt::format("session {}: committed {} {} bytes to {} ({} datagrams, {} invalid, {} bad-hash, {} stale{})", id,
                           rep.image_name, rep.image_bytes, rep.stored_at, rep.datagrams, rep.invalid_datagrams,
                           rep.bad_hash, rep.stale,
                           rep.device_state_bytes ? fmt::format(", device state {} bytes", rep.device_state_bytes) : ""));
    else if (rep.session)
      log_line(fmt::format("session {}: aborted: {}", id, rep.error));
    else
      log_line(fmt::format("connection from {} rejected: {}", peer, rep.error));
    if (once) return rep.committed ? kExitOk : kExitFailed;
  }
  log_line("stopped");
  return kExitOk;
}

}  // namespace hymig::cli
