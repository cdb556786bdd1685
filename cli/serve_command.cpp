// hymig serve: the destination daemon. Every connection is served on its own thread: its
// authentication (bounded by --handshake-timeout, at most --max-handshakes at once) never waits for
// another's, and nothing about this host or its images reaches a peer before it proved the cluster
// key. At most --max-incoming authenticated sessions run at once, and what they reserve (store
// space, memory for synthetic images) is counted together. No connection's failure ends the daemon.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <ctime>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/drain_supervisor.hpp"
#include "cli/serve_config.hpp"
#include "cli/serve_metrics.hpp"
#include "cli/service_notify.hpp"
#include "cli/stale_partial_images.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/units.hpp"
#include "engine/destination_engine.hpp"
#include "images/file_image.hpp"
#include "policy/capabilities.hpp"
#include "policy/host_capacity.hpp"
#include "protocol/handshake.hpp"
#include "runtime/session_backends.hpp"
#include "tcp/tcp_listener.hpp"
#include "tcp/tcp_reliable_channel.hpp"
#include "vm/libvirt_image.hpp"
#include "vm/vm_image.hpp"

namespace hymig::cli {
namespace {


// Levelled log lines (core/log.hpp): info for what went as asked, warn for a peer turned away or a
// session that failed.
void log_info(const std::string& s) { logger().info("{}", s); }
void log_warn(const std::string& s) { logger().warn("{}", s); }

// After an abort: stop sending, and read (discarding) what the source still sends for a moment
// before the socket closes, so the close is not a reset that would destroy the abort unread in
// the source's buffer: the source then reports the destination's reason, not "connection reset".
void linger_for_the_abort(int socket) {
  ::shutdown(socket, SHUT_WR);
  char sink[65536];
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{socket, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(socket, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
  }
}

class Server {
 public:
  explicit Server(ServeConfig cfg) : cfg_(std::move(cfg)) {
    if (!cfg_.libvirt) return;
    drain_ = std::make_unique<DrainSupervisor>(self_path(), cfg_.key_file, cfg_.lv.uri);
    prefetch_ = std::thread([uri = cfg_.lv.uri] {
      try {
        vm::prefetch_libvirt_capabilities(uri);
      } catch (const std::exception& e) {
        log_warn(std::string("libvirt: ") + e.what() + " (incoming domains will fail until it answers)");
      }
    });
  }
  ~Server() {
    if (prefetch_.joinable()) prefetch_.join();
  }

  // The last results kept for `hymig status`.
  static constexpr std::size_t kRecentResults = 32;

  // Accepts until SIGINT/SIGTERM (or, with --once, until one authenticated session ended).
  int run(TcpListener& listener, const std::atomic<bool>& stop) {
    auto last_status = std::chrono::steady_clock::now();
    while (!stop && !once_done_) {
      reap();
      if (std::chrono::steady_clock::now() - last_status >= std::chrono::seconds(5)) {
        notify_status(status_line());
        last_status = std::chrono::steady_clock::now();
      }
      try {
        auto conn = listener.accept(std::chrono::milliseconds(250));
        if (!conn) continue;
        if (handshakes_ >= cfg_.max_handshakes) {
          log_warn("connection from " + conn->peer_address() + " closed: " + std::to_string(cfg_.max_handshakes) +
                   " handshakes already under way (--max-handshakes)");
          continue;
        }
        ++handshakes_;
        auto done = std::make_shared<std::atomic<bool>>(false);
        workers_.push_back({std::thread([this, c = std::move(conn), done]() mutable {
                              serve_connection(std::move(c));
                              *done = true;
                            }),
                            done});
      } catch (const std::exception& e) {
        // A connection that failed between the kernel's accept and ours (reset in the backlog).
        log_warn(std::string("accept: ") + e.what());
      }
    }
    if (stop) {
      notify_stopping();
      reap();
      if (!workers_.empty())
        log_info(fmt::format("stopping: {} connection{} under way finish or abort first", workers_.size(),
                             workers_.size() == 1 ? "" : "s"));
      if (drain_ && drain_->cancel()) log_info("stopping: the drain of this node is cancelled (its migrations finish or abort)");
    }
    for (auto& w : workers_) w.thread.join();
    workers_.clear();
    return once_rc_;
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // What the running sessions hold together: each is checked against what the others reserved.
  struct Budget {
    std::mutex mutex;
    std::condition_variable freed;
    unsigned sessions = 0;
    std::uint64_t store_bytes = 0;   // file images on their way into the store
    std::uint64_t memory_bytes = 0;  // synthetic images held in memory
  };

  // One session's place among --max-incoming, and its reservations; all given back when it ends.
  class Slot {
   public:
    explicit Slot(Budget& b) : b_(b) {}
    ~Slot() {
      {
        const std::lock_guard lock(b_.mutex);
        if (taken_) --b_.sessions;
        b_.store_bytes -= store_;
        b_.memory_bytes -= memory_;
      }
      b_.freed.notify_all();
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    // Waits up to `timeout` for fewer than `limit` sessions; false when none came free.
    bool take(unsigned limit, std::chrono::milliseconds timeout) {
      std::unique_lock lock(b_.mutex);
      if (!b_.freed.wait_for(lock, timeout, [&] { return b_.sessions < limit; })) return false;
      ++b_.sessions;
      taken_ = true;
      return true;
    }
    // Reserves `bytes` of the store when its free space less `keep` (--store-reserve) holds them
    // beside what the other sessions reserved; else throws Error{no_space}.
    void reserve_store(std::uint64_t bytes, std::uint64_t free_bytes, std::uint64_t keep) {
      const std::lock_guard lock(b_.mutex);
      const std::uint64_t available = free_bytes > keep ? free_bytes - keep : 0;
      const std::uint64_t others = b_.store_bytes;
      if (available < others || available - others < bytes)
        throw Error(ErrorKind::no_space,
                    "the store has " + format_bytes(double(free_bytes)) + " free" +
                        (others ? ", " + format_bytes(double(others)) + " of it promised to migrations under way" : "") +
                        "; an image of " + format_bytes(double(bytes)) + " would leave less than --store-reserve " +
                        format_bytes(double(keep)));
      b_.store_bytes += bytes;
      store_ += bytes;
    }
    // Reserves memory for a synthetic image within `limit` (--max-image-bytes) for all of them.
    void reserve_memory(std::uint64_t bytes, std::uint64_t limit) {
      const std::lock_guard lock(b_.mutex);
      if (b_.memory_bytes > limit || limit - b_.memory_bytes < bytes)
        throw Error(ErrorKind::refused, "synthetic images under way hold " + format_bytes(double(b_.memory_bytes)) +
                                            "; another of " + format_bytes(double(bytes)) +
                                            " would exceed --max-image-bytes (" + format_bytes(double(limit)) + ")");
      b_.memory_bytes += bytes;
      memory_ += bytes;
    }

   private:
    Budget& b_;
    bool taken_ = false;
    std::uint64_t store_ = 0, memory_ = 0;
  };

  // A migration being received, as `hymig status` shows it.
  struct Incoming {
    std::uint64_t session = 0;
    std::string peer, image_name, image_kind;
    std::uint64_t image_bytes = 0;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    SessionLive live;
  };

  // Registers a session for status while it lives; its result goes to the recent list.
  class Registration {
   public:
    Registration(Server& s, const std::string& peer, const Notify& n) : s_(s), in_(std::make_shared<Incoming>()) {
      in_->session = n.session;
      in_->peer = peer;
      in_->image_name = n.image_name;
      in_->image_kind = n.image_kind;
      in_->image_bytes = n.image_bytes;
      const std::lock_guard lock(s_.status_mutex_);
      s_.incoming_.push_back(in_);
    }
    ~Registration() {
      const std::lock_guard lock(s_.status_mutex_);
      s_.incoming_.remove(in_);
    }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    SessionLive* live() { return &in_->live; }

   private:
    Server& s_;
    std::shared_ptr<Incoming> in_;
  };

  void record_result(const std::string& peer, const DestinationReport& rep, double seconds) {
    nlohmann::json r = {{"session", fmt::format("{:016x}", rep.session)},
                        {"peer", peer},
                        {"image_name", rep.image_name},
                        {"image_kind", rep.image_kind},
                        {"image_bytes", rep.image_bytes},
                        {"outcome", rep.committed ? "committed" : "failed"},
                        {"seconds", seconds},
                        {"finished_unix", std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()}};
    if (!rep.committed) r["error"] = printable(rep.error);
    const std::lock_guard lock(status_mutex_);
    recent_.push_front(std::move(r));
    if (recent_.size() > kRecentResults) recent_.pop_back();
  }

  std::string status_line() const {
    const HostCapacity c = capacity();
    std::string s = fmt::format("receiving {} of {}", c.incoming, c.max_incoming);
    if (drain_) {
      const auto d = drain_->status();
      if (d.value("state", "") == "running") s += "; draining this node";
    }
    return s;
  }

  // What this daemon can take now: drain's placement reads it.
  HostCapacity capacity() const {
    HostCapacity c = probe_host_memory();
    if (cfg_.libvirt) c.ram_files_free = free_space_of(cfg_.lv.memory_backing_dirs);
    c.max_image_bytes = cfg_.max_image_bytes;
    c.max_incoming = cfg_.max_incoming;
    c.libvirt = cfg_.libvirt;
    const std::lock_guard lock(status_mutex_);
    for (const auto& in : incoming_) {
      ++c.incoming;
      if (in->image_kind != "file") c.incoming_bytes += in->image_bytes;  // memory, not the store
    }
    return c;
  }

  std::string metrics() const {
    std::vector<RunningMigration> running;
    {
      const std::lock_guard lock(status_mutex_);
      for (const auto& i : incoming_) {
        const std::uint64_t got = i->live.bytes_received.load(), start = i->live.round_start_bytes.load(),
                            round = i->live.round_bytes.load();
        const std::uint64_t done = got > start ? got - start : 0;
        running.push_back({fmt::format("{:016x}", i->session), i->image_kind + ":" + i->image_name, got,
                           round > done ? round - done : 0, i->live.dirty_rate.load()});
      }
    }
    return metrics_.exposition(running, drain_ && drain_->status().value("state", "") == "running");
  }

 public:
  void serve_metrics(const std::string& address) {
    metrics_endpoint_ = std::make_unique<MetricsEndpoint>(address, [this] { return metrics(); });
    log_info("metrics on http://" + metrics_endpoint_->address() + "/metrics");
  }

 private:
  nlohmann::json status() const {
    nlohmann::json j = {{"software", "hymig " HYMIG_VERSION},
                        {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()},
                        {"capacity", to_json(capacity())}};
    if (const auto store = free_space_of({cfg_.store})) j["store_free"] = *store;
    nlohmann::json in = nlohmann::json::array();
    const std::lock_guard lock(status_mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& i : incoming_)
      in.push_back({{"session", fmt::format("{:016x}", i->session)},
                    {"peer", i->peer},
                    {"image_name", i->image_name},
                    {"image_kind", i->image_kind},
                    {"image_bytes", i->image_bytes},
                    {"phase", to_string(i->live.phase.load())},
                    {"round", i->live.round.load()},
                    {"bytes_received", i->live.bytes_received.load()},
                    {"seconds", std::chrono::duration<double>(now - i->started).count()}});
    j["incoming"] = std::move(in);
    j["recent"] = nlohmann::json(recent_);
    j["drain"] = drain_ ? drain_->status() : nlohmann::json{{"state", "none"}};
    return j;
  }

  void answer_query(ReliableChannel& rel, const Message& m, const std::string& peer) {
    nlohmann::json args;
    const std::string what = decode_query(m.body, args, {"status", "drain", "drain_cancel"});
    nlohmann::json answer;
    if (what == "status") {
      answer = status();
    } else if (!drain_) {
      answer = {{"accepted", false}, {"cancelled", false},
                {"error", "this daemon drains no node: start it with --libvirt (it drains its own libvirt)"}};
    } else if (what == "drain") {
      try {
        drain_->start(args);
        answer = {{"accepted", true}};
        log_info("drain of this node started for " + peer + ": " + printable(args.dump(), 400));
      } catch (const Error& e) {
        answer = {{"accepted", false}, {"error", e.what()}};
      }
    } else {
      answer = {{"cancelled", drain_->cancel()}};
      if (answer["cancelled"]) log_info("drain of this node cancelled by " + peer);
    }
    rel.send(wire(MsgType::answer), encode_answer(answer));
  }

  void reap() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (*it->done) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void serve_connection(std::unique_ptr<TcpReliableChannel> tcp) {
    const std::string peer = tcp->peer_address();
    const std::string peer_host = tcp->peer_host(), local_host = tcp->local_host();
    const int socket = tcp->socket_fd();
    SecureSession session;
    std::string detail;
    try {
      struct Done {
        std::atomic<unsigned>& n;
        ~Done() { --n; }
      } done{handshakes_};
      session = open_secure_session(std::move(tcp), socket, Role::destination, cfg_.key,
                                    std::chrono::steady_clock::now() + cfg_.handshake_timeout, &detail);
    } catch (const std::exception& e) {
      // Pre-auth: the peer learnt nothing but a failed TLS handshake; the reason stays here.
      log_warn("connection from " + peer + " rejected: " + printable(detail.empty() ? e.what() : detail));
      return;
    }
    ReliableChannel& rel = *session.channel;
    rel.set_io_timeout(cfg_.timeout);
    DestinationReport rep;
    const auto began = std::chrono::steady_clock::now();
    std::optional<Registration> reg;
    try {
      session.peer = exchange_hello(rel, Role::destination, to_json(probe_capabilities(peer_host, local_host)),
                                    cfg_.handshake_timeout);
      const auto first = rel.receive(cfg_.handshake_timeout);
      if (!first) throw Error(ErrorKind::timeout, "the peer asked nothing within --handshake-timeout");
      if (static_cast<MsgType>(first->type) == MsgType::query) {
        answer_query(rel, *first, peer);
        return;
      }
      if (static_cast<MsgType>(first->type) != MsgType::notify)
        reject_message(rel, *first, "the source", std::string("expected notify or query, got ") +
                                                      to_string(static_cast<MsgType>(first->type)));
      // The session's lanes and its end of the move to RC share the RDMA device between them.
      const runtime::DestinationBackends backends = runtime::destination_backends(local_host);
      DestinationOptions opts = destination_options(session, backends);
      opts.notify = decode_notify(first->body);
      if (cfg_.once && once_claimed_.exchange(true))
        throw Error(ErrorKind::refused, "busy: this daemon (--once) is serving another migration");
      Slot slot(budget_);
      if (!slot.take(cfg_.max_incoming, cfg_.timeout))
        throw Error(ErrorKind::refused, fmt::format("busy: this daemon is receiving {} migration{} already (--max-incoming {}); "
                                                    "try again later",
                                                    cfg_.max_incoming, cfg_.max_incoming == 1 ? "" : "s", cfg_.max_incoming));
      reg.emplace(*this, peer, *opts.notify);
      opts.live = reg->live();
      rep = run_destination(rel, backends.datagrams, target_factory(slot), opts);
    } catch (const std::exception& e) {
      rep.error = e.what();
      send_abort_quietly(rel, e.what());
    }
    const std::string id = fmt::format("{:016x}", rep.session);
    if (rep.session) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      record_result(peer, rep, seconds);
      FinishedMigration f{rep.committed, seconds};
      if (reg) {
        f.blackout_s = reg->live()->blackout_s.load();
        f.bytes_received = reg->live()->bytes_received.load();
      }
      f.bad_mac = rep.bad_mac;
      f.replayed = rep.replayed;
      f.future_round = rep.future_round;
      f.stale = rep.stale;
      f.bad_hash = rep.bad_hash;
      f.bad_compressed = rep.bad_compressed;
      f.invalid = rep.invalid_datagrams;
      f.broken_record = rep.broken_record;
      metrics_.finished(f);
    }
    reg.reset();
    if (rep.committed)
      log_info(fmt::format(
          "session {}: committed {} {} bytes to {} ({} datagrams, {} invalid: {} bad-mac, {} replayed, "
          "{} future-round; {} stale{}{}{}{})",
          id, rep.image_name, rep.image_bytes, rep.stored_at, rep.datagrams, rep.invalid_datagrams, rep.bad_mac,
          rep.replayed, rep.future_round, rep.stale,
          rep.bad_compressed ? fmt::format("; {} bad-compressed", rep.bad_compressed) : "",
          rep.broken_record ? fmt::format("; {} in broken records", rep.broken_record) : "",
          rep.device_state_bytes ? fmt::format(", device state {} bytes", rep.device_state_bytes) : "",
          rep.prefaulted_bytes ? fmt::format("; {} populated ahead", format_bytes(double(rep.prefaulted_bytes))) : ""));
    else if (rep.session)
      log_warn(fmt::format("session {}: aborted: {} ({} datagrams, {} bad-mac, {} replayed)", id, printable(rep.error),
                           rep.datagrams, rep.bad_mac, rep.replayed));
    else
      log_warn("session with " + peer + " refused: " + printable(rep.error));
    if (!rep.committed) linger_for_the_abort(socket);
    if (cfg_.once && rep.session) {
      once_rc_ = rep.committed ? kExitOk : kExitFailed;
      once_done_ = true;
    }
  }

  DestinationOptions destination_options(const SecureSession& session,
                                         const runtime::DestinationBackends& backends) const {
    DestinationOptions d;
    d.secrets = &session.secrets;
    d.peer_timeout = cfg_.timeout;
    d.make_reliable = backends.rc_acceptors;
    d.prefault = cfg_.prefault;
    return d;
  }

  // What this daemon accepts, checked on the authenticated notify before anything is reserved.
  TargetFactory target_factory(Slot& slot) const {
    return [this, &slot](const Notify& n) -> std::unique_ptr<TargetImage> {
      if (n.image_bytes > cfg_.max_image_bytes)
        throw Error(ErrorKind::refused, "an image of " + format_bytes(double(n.image_bytes)) +
                                            " exceeds this daemon's --max-image-bytes (" +
                                            format_bytes(double(cfg_.max_image_bytes)) + ")");
      if (n.image_kind == "synthetic") {
        if (!cfg_.allow_synthetic)
          throw Error(ErrorKind::refused, "this daemon takes no synthetic images (`hymig serve --allow-synthetic`, "
                                          "for tests and benchmarks)");
        slot.reserve_memory(n.image_bytes, cfg_.max_image_bytes);
        return make_memory_target(n.image_bytes);
      }
      if (n.image_kind == "vm" && !n.vm_definition.empty()) {
        if (!cfg_.libvirt)
          throw Error(ErrorKind::refused, "this daemon receives no libvirt domain: start `hymig serve --libvirt [--connect URI]`");
        return vm::open_libvirt_target(cfg_.lv, n);
      }
      if (n.image_kind == "vm") {
        if (cfg_.vm_qmp.empty())
          throw Error(ErrorKind::refused, "this daemon receives no VM: start `hymig serve --vm-qmp PATH` with the QMP socket "
                                          "of a destination QEMU waiting in -incoming defer");
        return vm::open_vm_target(cfg_.vm_qmp, n, cfg_.vm_qmp_ram);
      }
      if (n.image_kind != "file") throw Error(ErrorKind::refused, "this daemon cannot receive '" + n.image_kind + "' images");
      std::error_code ec;
      std::filesystem::create_directories(cfg_.store, ec);
      if (ec) throw Error(ErrorKind::io, "cannot create the store '" + cfg_.store + "': " + ec.message());
      struct statvfs fs {};
      if (::statvfs(cfg_.store.c_str(), &fs) != 0) throw_errno("cannot see the free space of the store '" + cfg_.store + "'");
      const std::uint64_t free_bytes = std::uint64_t(fs.f_bavail) * fs.f_frsize;
      const std::uint64_t reserve =
          cfg_.store_reserve.value_or(std::min<std::uint64_t>(1ull << 30, std::uint64_t(fs.f_blocks) * fs.f_frsize / 20));
      slot.reserve_store(n.image_bytes, free_bytes, reserve);
      return make_file_target(cfg_.store, n.image_name, n.session, n.image_bytes, cfg_.replace);
    };
  }

  ServeConfig cfg_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex status_mutex_;
  std::list<std::shared_ptr<Incoming>> incoming_;
  std::deque<nlohmann::json> recent_;
  std::list<Worker> workers_;
  std::atomic<unsigned> handshakes_{0};
  Budget budget_;
  std::atomic<bool> once_claimed_{false};
  std::atomic<bool> once_done_{false};
  std::atomic<int> once_rc_{kExitOk};
  std::unique_ptr<DrainSupervisor> drain_;  // with --libvirt: this node's drain, when asked for
  ServeMetrics metrics_;
  std::thread prefetch_;  // libvirt's capabilities, computed while nothing waits for them
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;  // last: stopped before what it reads
};

}  // namespace

int run_serve(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_serve_options(desc);
  add_key_options(desc);
  po::variables_map vm;
  if (!parse_options("serve", "[--listen HOST:PORT] [--store DIR] [--vm-qmp PATH | --libvirt [--connect URI]] [--once] [--key-file FILE]",
                     "Only sources that prove they hold the cluster key (--key-file; `hymig keygen`) are served,\n"
                     "and every session is encrypted. A file image arrives as STORE/.NAME.SESSION.part and is\n"
                     "renamed to STORE/NAME (never over an existing image without --replace) only once both\n"
                     "sides verified the digest and the source said commit; it is synced to disk before the\n"
                     "source is told. On any failure it is deleted. Synthetic images (--allow-synthetic) are\n"
                     "received into memory and dropped after verification.\n"
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
                     "already runs here, or another domain of that name, is refused.\n"
                     "\n"
                     "An incoming domain may not run programs or use host devices or files on this host unless\n"
                     "allowed: its XML is refused, naming the element and the option, when it has qemu: elements\n"
                     "(--allow-qemu-args), an emulator other than this libvirt's default (--allow-emulator PATH),\n"
                     "host devices (--allow-hostdev), network disks (--allow-network-disks), or a disk, filesystem,\n"
                     "chardev file, kernel, firmware or other host path outside --allow-path DIR or a volume\n"
                     "outside --allow-pool NAME. Interface scripts, a virtiofsd binary and static security labels\n"
                     "are always refused. Each option is also a config key (allow-path = /var/lib/libvirt/images).\n",
                     desc, args, vm, kDefaultConfigFile))
    return kExitOk;

  ServeConfig cfg = serve_config_from(vm);
  cfg.key = load_key(vm);
  cfg.key_file = key_file_path(vm);

  // What a daemon killed mid-session left in the store goes now.
  for (const auto& name : remove_stale_partial_images(cfg.store))
    log_warn("removed the partial image " + name + " from the store: a daemon stopped in the middle of receiving it");

  const std::atomic<bool>& stop = stop_on_signals();

  TcpListener listener = TcpListener::listen(cfg.listen);
  log_info("cluster key " + cfg.key.id());
  log_info("listening on " + listener.local_address());
  notify_ready("listening on " + listener.local_address());
  const std::optional<std::string> metrics = cfg.metrics;
  Server server(std::move(cfg));
  if (metrics) server.serve_metrics(*metrics);
  const int rc = server.run(listener, stop);
  log_info("stopped");
  return rc;
}

}  // namespace hymig::cli
