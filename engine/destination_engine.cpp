#include "engine/destination_engine.hpp"

#include <poll.h>
#include <sodium.h>

#include <array>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/numeric_host.hpp"
#include "engine/page_applier.hpp"
#include "engine/session_phase.hpp"
#include "engine/target_prefaulter.hpp"
#include "protocol/handshake.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/stop_point.hpp"

namespace hymig {
namespace {

using Clock = std::chrono::steady_clock;

// How long a new connection on the moved channel has to answer the bind challenge.
constexpr std::chrono::milliseconds kBindTimeout{2000};

class DestinationRun {
 public:
  DestinationRun(ReliableChannel& rel, const ReceiverDatagramFactory& make_datagram, const TargetFactory& make_target,
                 const DestinationOptions& opts)
      : rel_(&rel), make_datagram_(make_datagram), make_target_(make_target), opts_(opts),
        phase_(Role::destination, [this](SessionPhase p) { publish_phase(p); }) {
    if (!opts_.secrets) throw std::logic_error("run_destination: DestinationOptions::secrets is required");
  }

  ~DestinationRun() {
    stop_lanes();
    if (tagger_.joinable()) tagger_.join();
  }

  DestinationReport run() {
    try {
      prepare();
      phase_.to(SessionPhase::rounds);
      rounds();
      phase_.to(SessionPhase::final_delta);
      final_phase();
      phase_.to(SessionPhase::committed);
    } catch (const std::exception& e) {
      // Whatever the phase, the destination's copy goes: the source resumes, or (commit taken, the
      // target failed to start) it never ran here.
      phase_.to(SessionPhase::failed);
      report_.error = e.what();
      stop_lanes();  // before the target goes: lanes write into it, the tagger reads it
      if (tagger_.joinable()) tagger_.join();
      if (target_) target_->discard();
      // An abort from the source needs no answer; anything else (a refusal of ours included) is
      // told to the source.
      if (!dynamic_cast<const PeerAborted*>(&e)) send_abort_quietly(*rel_, report_.error);
    }
    if (applier_) {
      report_.datagrams = applier_->datagrams();
      report_.invalid_datagrams = applier_->invalid();
      report_.bad_hash = applier_->dropped(DropReason::bad_hash);
      report_.bad_compressed = applier_->dropped(DropReason::bad_compressed);
      report_.bad_mac = applier_->dropped(DropReason::bad_mac);
      report_.replayed = applier_->dropped(DropReason::replayed);
      report_.future_round = applier_->dropped(DropReason::future_round);
      report_.stale = applier_->dropped(DropReason::stale_round);
      report_.broken_record = applier_->dropped(DropReason::broken_record);
    }
    return report_;
  }

 private:
  // The phase as status and metrics read it (SessionLive); the pause-to-commit time with it.
  void publish_phase(SessionPhase p) {
    if (!opts_.live) return;
    opts_.live->phase.store(p, std::memory_order_relaxed);
    const std::int64_t now = Clock::now().time_since_epoch().count();
    if (p == SessionPhase::final_delta) opts_.live->paused_at_ns.store(now, std::memory_order_relaxed);
    if (const std::int64_t paused = opts_.live->paused_at_ns.load(); p == SessionPhase::committed && paused)
      opts_.live->blackout_s.store(double(now - paused) / 1e9, std::memory_order_relaxed);
  }

  // For status and metrics: the round's size, and the dirty rate its size implies.
  void note_round(std::uint32_t round, std::uint64_t bytes) {
    SessionLive& l = *opts_.live;
    const auto now = Clock::now();
    if (round > 0 && round_began_ != Clock::time_point{}) {
      const double s = std::chrono::duration<double>(now - round_began_).count();
      if (s > 0) l.dirty_rate.store(double(bytes) / s, std::memory_order_relaxed);
    }
    round_began_ = now;
    l.round.store(round, std::memory_order_relaxed);
    l.round_bytes.store(bytes, std::memory_order_relaxed);
    l.round_start_bytes.store(l.bytes_received.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }

  void prepare() {
    rel_->set_io_timeout(opts_.peer_timeout);
    notify_ = opts_.notify ? *opts_.notify : decode_notify(expect(*rel_, MsgType::notify, opts_.peer_timeout).body);
    report_.session = notify_.session;
    report_.image_name = notify_.image_name;
    report_.image_kind = notify_.image_kind;
    report_.image_bytes = notify_.image_bytes;
    // Pages messages carry at most kMaxPagesPerMessage pages; nothing else has a payload.
    rel_->set_limits(std::max<std::size_t>(1 << 20, 8 + 8 * kMaxPagesPerMessage),
                    std::uint64_t{kMaxPagesPerMessage} * notify_.page_size);

    target_ = make_target_(notify_);
    report_.stored_at = target_->description();
    Ready ready;
    DatagramLayout layout{};
    if (uses_datagrams(notify_.bulk)) {
      std::size_t datagram_bytes = notify_.datagram_bytes;
      for (std::uint32_t l = 0; l < notify_.lanes; ++l) {
        auto ch = make_datagram_(notify_);
        const std::string& endpoint = notify_.bulk_endpoints[l];
        const std::string host = ch->endpoint_host(endpoint);
        if (!same_numeric_host(host, rel_->peer_host()))
          throw Error(ErrorKind::protocol, "the source named a datagram endpoint on another host (" + printable(host, 64) +
                                               ", the connection's peer is " + rel_->peer_host() + ")");
        ch->connect(endpoint);
        ch->register_memory(target_->memory());
        ready.bulk_endpoints.push_back(ch->local_endpoint());
        datagram_bytes = std::min(datagram_bytes, ch->max_datagram());
        lanes_.push_back(std::move(ch));
      }
      ready.datagram_bytes = static_cast<std::uint32_t>(datagram_bytes);
      layout = make_layout(notify_.page_size, ready.datagram_bytes);
    }
    // With full verification the digest rehashes the image: hashing reliable pages on arrival too
    // would be the same work twice on the receive thread.
    applier_ = std::make_unique<PageApplier>(target_->memory(), notify_.page_size, notify_.session, layout,
                                             notify_.protection, *opts_.secrets, notify_.lanes,
                                             notify_.verify != VerifyMode::full, target_->starts_zeroed(), notify_.compressed_pages);
    std::unique_ptr<ReliableAcceptor> acceptor;
    if (notify_.reliable != ReliableTransport::tcp) {
      if (!opts_.make_reliable)
        throw Error(ErrorKind::refused, "this daemon cannot move a session to " + std::string(wire_name(notify_.reliable)));
      acceptor = opts_.make_reliable(notify_);
      ready.reliable_endpoint = acceptor->endpoint();
    }
    rel_->send(wire(MsgType::ready), encode_ready(ready));
    stop_point(Role::destination, "ready");
    if (acceptor) {
      // From here on every message goes over the new channel; the first connection stays open, idle.
      moved_rel_ = accept_bound(*acceptor);
      moved_rel_->set_limits(std::max<std::size_t>(1 << 20, 8 + 8 * kMaxPagesPerMessage),
                             std::uint64_t{kMaxPagesPerMessage} * notify_.page_size);
      rel_ = moved_rel_.get();
    }
    if (notify_.final_delta == FinalDeltaMethod::write) expose_target();
    start_lanes();
  }

  // The moved channel's listener takes whoever connects first: a connection counts only once it
  // answered a fresh challenge sealed under the session's "rc" keys. Others are closed, and the
  // listener waits on for the source until the deadline.
  std::unique_ptr<ReliableChannel> accept_bound(ReliableAcceptor& acceptor) {
    const auto deadline = Clock::now() + opts_.peer_timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) throw Error(ErrorKind::timeout, "the source did not connect its " + std::string(wire_name(notify_.reliable)) + " channel in time");
      auto ch = seal_channel(acceptor.accept(left), *opts_.secrets, "rc", Role::destination);
      ch->set_io_timeout(std::min(left, kBindTimeout));
      ch->set_limits(1024, 0);
      try {
        Bind challenge;
        randombytes_buf(challenge.challenge.data(), challenge.challenge.size());
        ch->send(wire(MsgType::bind), encode_bind(challenge));
        const Bind answer = decode_bind(expect(*ch, MsgType::bind, std::min(left, kBindTimeout)).body);
        if (answer.session == notify_.session && answer.challenge == challenge.challenge) {
          ch->set_io_timeout(opts_.peer_timeout);
          return ch;
        }
      } catch (const Error&) {
        // Not the session's peer (or it gave up): this connection is closed; keep listening.
      }
      ++report_.foreign_connections;
    }
  }

  // The source asked to write the final delta straight into the target image: register it once with
  // the reliable channel now (outside the blackout); its window goes to the source after pause.
  // Where that cannot be done, the source gets no window and sends pages messages.
  void expose_target() {
    ImageWriter* w = rel_->image_writer();
    if (!w) {
      report_.final_delta_note = "no one-sided writes on " + rel_->transport_name();
      return;
    }
    try {
      const RemoteImage r = w->expose_target(target_->memory());
      window_ = ImageWindow{r.address, r.key, r.bytes};
    } catch (const Error& e) {
      report_.final_delta_note = std::string("target image not registered: ") + e.what();
    }
  }

  // ---- lanes: one thread per datagram channel ------------------------------------------------

  // Each lane thread takes its channel's datagrams and applies them (holding the state lock shared:
  // lanes own disjoint pages); the control thread takes it exclusively for everything else that
  // touches the bookkeeping or the image.
  void start_lanes() {
    lane_idle_ = std::make_unique<std::atomic<std::uint64_t>[]>(lanes_.size());
    for (std::uint32_t l = 0; l < lanes_.size(); ++l) lane_threads_.emplace_back([this, l] { lane_loop(l); });
  }

  void stop_prefaulter() noexcept {
    if (!prefaulter_) return;
    prefaulter_->stop();
    report_.prefaulted_bytes = prefaulter_->populated_bytes();
    if (prefaulter_->error())
      logger().debug("destination: populating the target ahead stopped: {}", std::strerror(prefaulter_->error()));
    prefaulter_.reset();
  }

  void stop_lanes() noexcept {
    stop_prefaulter();
    stop_lanes_.store(true);
    for (auto& t : lane_threads_)
      if (t.joinable()) t.join();
    lane_threads_.clear();
  }

  void lane_loop(std::uint32_t l) noexcept {
    std::array<InDatagram, 64> in;
    try {
      while (!stop_lanes_.load(std::memory_order_relaxed)) {
        const std::size_t n = lanes_[l]->receive_batch(in, std::chrono::milliseconds(5));
        if (n == 0) {
          lane_idle_[l].fetch_add(1, std::memory_order_release);  // found nothing queued: see round_end
          continue;
        }
        const std::uint64_t now = monotonic_ns();
        const std::uint64_t authentic = applier_->datagrams();
        {
          const std::shared_lock lock(state_);
          applier_->apply_batch(l, std::span<const InDatagram>(in.data(), n), now);
        }
        // Liveness counts authentic datagrams only: junk from anyone must not keep a session alive.
        if (applier_->datagrams() != authentic) heard();
      }
    } catch (...) {
      const std::lock_guard lock(lane_error_mutex_);
      if (!lane_error_) lane_error_ = std::current_exception();
    }
  }

  // A lane's channel failed (the source's port gone, a device error): the session fails with it.
  void check_lanes() {
    const std::lock_guard lock(lane_error_mutex_);
    if (lane_error_) std::rethrow_exception(lane_error_);
  }

  void heard() { last_heard_ns_.store(monotonic_ns(), std::memory_order_relaxed); }
  bool silent_too_long() const {
    // A lane thread may hear the source after this thread read the clock: a "last heard" in the
    // future is silence of zero, not of 2^64 ns.
    const auto heard_ns = static_cast<std::int64_t>(last_heard_ns_.load(std::memory_order_relaxed));
    const auto quiet = static_cast<std::int64_t>(monotonic_ns()) - heard_ns;
    return quiet > std::chrono::nanoseconds(opts_.peer_timeout).count();
  }

  void send_progress() {
    Progress p;
    p.receiver_time_ns = monotonic_ns();
    p.next_seq = applier_->next_seq();  // first: see PageApplier::next_seq
    p.datagrams = applier_->datagrams();
    p.bytes = applier_->bytes();
    p.min_owd_ns = applier_->take_min_owd();
    p.invalid = applier_->invalid();
    for (const auto& ch : lanes_) p.backlog_bytes += ch->receive_backlog_bytes();
    if (const auto [stamp, arrival] = applier_->newest_stamp(); stamp) {
      p.echo_send_time_ns = stamp;
      p.echo_hold_ns = p.receiver_time_ns > arrival ? p.receiver_time_ns - arrival : 0;
    }
    rel_->send(wire(MsgType::progress), encode_progress(p));
    last_report_ = Clock::now();
  }

  // Between control messages: reports every 10 ms while datagrams flow, liveness, the lanes' health.
  void tick() {
    if (opts_.live)
      opts_.live->bytes_received.store(applier_->bytes() + rel_->stats().bytes_received, std::memory_order_relaxed);
    if (!lanes_.empty() && Clock::now() - last_report_ >= std::chrono::milliseconds(10)) send_progress();
    check_lanes();
    if (silent_too_long())
      throw Error(ErrorKind::timeout, "the source went silent for " + std::to_string(opts_.peer_timeout.count() / 1000) +
                                          " s: link down or source gone");
  }

  Bitmap missing_set() const {
    Bitmap m(applier_->page_count());
    m.set_complement_of(applier_->present());
    return m;
  }

  // Reads a pages message's payload straight into the target image (the lanes held: none writes
  // into a page the payload is landing in).
  void receive_pages(const Message& m) {
    const std::uint32_t round = decode_pages_header(m.body, applier_->page_count(), page_list_);
    if (m.payload_bytes != page_list_.size() * std::uint64_t{notify_.page_size})
      throw Error(ErrorKind::protocol, "pages message announces " + std::to_string(m.payload_bytes) + " payload bytes for " +
                                           std::to_string(page_list_.size()) + " pages");
    dst_.clear();
    for (auto p : page_list_) {
      auto s = applier_->page(p);
      dst_.push_back({s.data(), s.size()});
    }
    const std::unique_lock lock(state_);
    rel_->receive_payload(dst_);
    applier_->note_pages_written(page_list_, in_final_ ? kFinalRound : round);
  }

  // Datagrams the lanes have taken in, applied, kept or dropped: changes while any still arrive.
  std::uint64_t arrivals() const { return applier_->taken(); }

  // How often each lane's receive came back empty (its queue drained, nothing came in 5 ms).
  std::vector<std::uint64_t> lane_idle_counts() const {
    std::vector<std::uint64_t> v(lanes_.size());
    for (std::size_t l = 0; l < v.size(); ++l) v[l] = lane_idle_[l].load(std::memory_order_acquire);
    return v;
  }
  bool lanes_all_idle_since(const std::vector<std::uint64_t>& before) const {
    for (std::size_t l = 0; l < before.size(); ++l)
      if (lane_idle_[l].load(std::memory_order_acquire) == before[l]) return false;
    return true;
  }

  // One message of the rounds; returns true on pause.
  bool handle_round_message(const Message& m) {
    switch (static_cast<MsgType>(m.type)) {
      case MsgType::round_begin: {
        RoundBegin b = decode_round_begin(m.body, applier_->page_count());
        if (opts_.live) note_round(b.round, b.pages.count() * std::uint64_t{notify_.page_size});
        {
          const std::unique_lock lock(state_);
          applier_->begin_round(b.round, b.pages);
        }
        if (b.round == 0 && opts_.prefault && !prefaulter_) {
          // Round 0 sends every page once, in increasing order on every lane.
          b.pages.clear_where(b.known_zero);
          prefaulter_ = std::make_unique<TargetPrefaulter>(target_->memory(), notify_.page_size, std::move(b.pages),
                                                           [a = applier_.get()] { return a->receive_frontier(); });
        }
        stop_point(Role::destination, "round", b.round);
        return false;
      }
      case MsgType::pages:
        receive_pages(m);
        return false;
      case MsgType::round_end: {
        const auto re = decode_round_end(m.body);
        // Datagrams sent before round-end may still be on their way to the lanes: wait until the
        // lanes have seen the round's last sequence numbers, at most 200 ms, and no longer than
        // 10 ms after the last datagram came in once every lane has found its queue empty since.
        // The last one may be lost: that wait stood in the blackout of every final datagram round
        // whose last datagram was lost. A lane thread descheduled or busy (a loaded host) has
        // not looked: what is queued for it is late, not lost, and would be sent again.
        if (!lanes_.empty()) {
          const auto start = Clock::now();
          auto last_arrival = start;
          std::uint64_t seen = arrivals();
          std::vector<std::uint64_t> idle_at_arrival = lane_idle_counts();
          while (applier_->next_seq() < re.next_seq) {
            check_lanes();
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            const auto now = Clock::now();
            const std::uint64_t n = arrivals();
            if (n != seen) {
              seen = n;
              last_arrival = now;
              idle_at_arrival = lane_idle_counts();
            } else if (now - last_arrival > std::chrono::milliseconds(10) && lanes_all_idle_since(idle_at_arrival)) {
              break;
            }
            if (now - start > std::chrono::milliseconds(200)) break;
          }
          send_progress();
        }
        Bitmap missing;
        {
          const std::unique_lock lock(state_);
          missing = missing_set();
        }
        rel_->send(wire(MsgType::round_report), encode_page_set(re.round, missing));
        return false;
      }
      case MsgType::pause:
        stop_point(Role::destination, "final-delta");
        return true;
      default:
        reject_message(*rel_, m, "the source",
                       std::string("unexpected ") + to_string(static_cast<MsgType>(m.type)) +
                           " from the source during the rounds");
    }
  }

  void rounds() {
    heard();
    last_report_ = Clock::now();
    while (true) {
      if (auto m = rel_->receive(std::chrono::milliseconds(lanes_.empty() ? 100 : 5))) {
        heard();
        if (handle_round_message(*m)) return;
      }
      tick();
    }
  }

  void final_phase() {
    // The source is paused: datagrams of the rounds so far are stale from now on (the final delta
    // supersedes them), so none may land while the reliable channel or RDMA writes fill pages.
    // Under loss the final delta comes as datagram rounds first (each newer than the last bulk
    // round), ended by datagrams-done before the reliable channel repairs the rest.
    in_final_ = true;
    stop_prefaulter();  // the blackout has the cores
    {
      const std::unique_lock lock(state_);
      cut_off_round_ = applier_->announced_round() + 1;
      applier_->cut_off_rounds(cut_off_round_);
    }
    start_tagging();
    if (window_) rel_->send(wire(MsgType::image_window), encode_image_window(*window_));
    Bitmap missing;
    {
      const std::unique_lock lock(state_);
      missing = missing_set();
    }
    rel_->send(wire(MsgType::missing), encode_page_set(0, missing));
    heard();
    while (true) {
      const auto m = rel_->receive(std::chrono::milliseconds(lanes_.empty() ? 100 : 5));
      if (!m) {
        tick();
        continue;
      }
      heard();
      const auto type = static_cast<MsgType>(m->type);
      if (type == MsgType::pages) {
        receive_pages(*m);
        continue;
      }
      if (!lanes_.empty() && (type == MsgType::round_begin || type == MsgType::round_end)) {
        handle_round_message(*m);
        continue;
      }
      if (!lanes_.empty() && type == MsgType::datagrams_done) {
        {
          const std::unique_lock lock(state_);
          applier_->cut_off_rounds(kFinalRound);
        }
        rel_->send(wire(MsgType::datagrams_done), {});
        continue;
      }
      if (type == MsgType::written && window_) {
        // The source wrote these pages (sealed) into the exposed image before it sent this message:
        // they are in place now (the channel delivers its writes before a later message). Each is
        // decrypted in place and must be authentic before it counts.
        const std::uint32_t round = decode_written(m->body, applier_->page_count(), page_list_, tag_list_);
        if (round != kFinalRound)
          throw Error(ErrorKind::protocol, "written message for round " + std::to_string(round) + " in the final delta");
        ImageWriter& w = *rel_->image_writer();
        const std::unique_lock lock(state_);
        for (std::size_t i = 0; i < page_list_.size(); ++i)
          if (!w.open_written(page_list_[i] * notify_.page_size, notify_.page_size, tag_list_[i]))
            throw Error(ErrorKind::protocol, "a page the source wrote into the image failed authentication (page " +
                                                 std::to_string(page_list_[i]) + ")");
        applier_->note_pages_written(page_list_, kFinalRound);
        report_.final_delta = "write";
        continue;
      }
      if (type == MsgType::final_end) {
        decode_u64(m->body, "final-end");  // validated; the digest, not the count, decides
        break;
      }
      reject_message(*rel_, *m, "the source", std::string("unexpected ") + to_string(type) + " during the final delta");
    }

    // Nothing is taken from the lanes any more: stop them before the image is read whole.
    stop_lanes();
    check_lanes();
    const Digest theirs = decode_digest(expect(*rel_, MsgType::digest, opts_.peer_timeout).body);
    stop_point(Role::destination, "verify");
    phase_.to(SessionPhase::verifying);
    Verify v;
    v.missing_pages = applier_->page_count() - applier_->present().count();
    if (notify_.verify == VerifyMode::full) {
      v.digest = finish_tagging();
    } else {
      v.digest = keyed_digest_of_hashes(*opts_.secrets, applier_->page_hashes());
    }
    v.ok = v.missing_pages == 0 && v.digest == theirs;
    report_.digest = to_hex(v.digest);
    rel_->send(wire(MsgType::verify), encode_verify(v));
    if (!v.ok)
      throw Error(ErrorKind::verify, v.missing_pages ? std::to_string(v.missing_pages) + " pages missing after the final delta"
                                                     : "image digest differs from the source's");

    // Waiting for commit shows as committing, or as device-state while a VM's state arrives.
    const bool device_state = target_->takes_device_state();
    phase_.to(device_state ? SessionPhase::device_state : SessionPhase::committing);
    await_commit();
    stop_point(Role::destination, "commit");
    if (device_state) phase_.to(SessionPhase::committing);
    target_->commit();
    report_.committed = true;
    stop_point(Role::destination, "committed");
    // The source resumes nothing once it sent commit; its answer may be lost without harm.
    try {
      rel_->send(wire(MsgType::committed), {});
    } catch (const std::exception&) {
    }
  }

  // --verify full: the keyed digest tags every page. The bulk of the image will not change any more
  // once the source paused, so a thread tags all of it while the final delta streams; only the
  // pages written since (rounds from the cut-off on, and the reliable channel's) are tagged again at
  // the end. A page written while the thread read it got a wrong tag: it is among those.
  void start_tagging() {
    if (notify_.verify != VerifyMode::full) return;
    tags_.emplace(*opts_.secrets, notify_.page_size, applier_->page_count());
    tag_holes_ = Bitmap(applier_->page_count());
    target_->find_zero_pages(tag_holes_);
    tagger_ = std::thread([this] { tags_->tag_all(target_->memory(), tag_holes_); });
  }

  Digest finish_tagging() {
    if (tagger_.joinable()) tagger_.join();
    const Bitmap written = applier_->written_since(cut_off_round_);
    tags_->retag(target_->memory(), written, Bitmap(applier_->page_count()));
    return tags_->digest();
  }

  // After verify: the device state (if the target takes one), then commit. A target that takes
  // device state is committed only once it applied all of it.
  void await_commit() {
    const bool takes_state = target_->takes_device_state();
    StreamDigest digest;
    std::uint64_t bytes = 0;
    bool loaded = false;
    std::vector<std::byte> piece;
    while (true) {
      const auto m = rel_->receive(opts_.peer_timeout);
      if (!m) throw Error(ErrorKind::timeout, std::string("no ") + (takes_state && !loaded ? "device state" : "commit") +
                                                  " from the source within " +
                                                  std::to_string(opts_.peer_timeout.count() / 1000) + " s");
      const auto type = static_cast<MsgType>(m->type);
      if (type == MsgType::commit) {
        if (takes_state && !loaded)
          throw Error(ErrorKind::protocol, "commit before the device state was loaded: this " +
                                               notify_.image_kind + " image needs its device state");
        return;
      }
      if (takes_state && !loaded && type == MsgType::device_state) {
        const std::uint64_t offset = decode_device_state_header(m->body);
        if (offset != bytes)
          throw Error(ErrorKind::protocol, "device-state piece at offset " + std::to_string(offset) + ", expected " +
                                               std::to_string(bytes));
        if (m->payload_bytes == 0 || m->payload_bytes > kMaxDeviceStatePiece)
          throw Error(ErrorKind::protocol, "device-state piece of " + std::to_string(m->payload_bytes) +
                                               " bytes (1.." + std::to_string(kMaxDeviceStatePiece) + ")");
        piece.resize(m->payload_bytes);
        const MutableBuffer dst{piece.data(), piece.size()};
        rel_->receive_payload({&dst, 1});
        digest.update(piece);
        target_->write_device_state(piece);
        bytes += piece.size();
        continue;
      }
      if (takes_state && !loaded && type == MsgType::device_state_end) {
        const DeviceStateEnd end = decode_device_state_end(m->body);
        if (end.bytes != bytes || end.digest != digest.digest())
          throw Error(ErrorKind::verify, "the device state arrived damaged: " + std::to_string(bytes) + " bytes, digest " +
                                             to_hex(digest.digest()) + "; the source sent " + std::to_string(end.bytes) +
                                             " bytes, digest " + to_hex(end.digest));
        target_->finish_device_state();
        report_.device_state_bytes = bytes;
        loaded = true;
        rel_->send(wire(MsgType::device_state_loaded), {});
        continue;
      }
      reject_message(*rel_, *m, "the source", std::string("unexpected ") + to_string(type) + " after verify");
    }
  }

  ReliableChannel* rel_;  // the connection the session started on, or the RC channel it moved to
  std::unique_ptr<ReliableChannel> moved_rel_;
  const ReceiverDatagramFactory& make_datagram_;
  const TargetFactory& make_target_;
  DestinationOptions opts_;
  DestinationReport report_;
  Notify notify_;
  std::unique_ptr<TargetImage> target_;
  std::vector<std::unique_ptr<DatagramChannel>> lanes_;  // one datagram channel per lane
  std::unique_ptr<PageApplier> applier_;
  std::unique_ptr<TargetPrefaulter> prefaulter_;  // round 0: the target populated ahead of the stream
  std::vector<std::thread> lane_threads_;
  std::atomic<bool> stop_lanes_{false};
  std::unique_ptr<std::atomic<std::uint64_t>[]> lane_idle_;  // per lane: empty receives (lane_idle_counts)
  std::shared_mutex state_;  // shared: lanes applying datagrams; exclusive: everything else on the pages
  std::mutex lane_error_mutex_;
  std::exception_ptr lane_error_;
  std::atomic<std::uint64_t> last_heard_ns_{0};
  std::uint32_t cut_off_round_ = 0;  // the first round after the pause
  std::optional<ImageTags> tags_;    // --verify full: the keyed digest, tagged while the final delta streams
  Bitmap tag_holes_;
  std::thread tagger_;
  std::vector<std::uint64_t> page_list_;
  std::vector<AeadTag> tag_list_;
  std::vector<MutableBuffer> dst_;
  std::optional<ImageWindow> window_;  // the target image exposed for the source's writes
  bool in_final_ = false;
  Clock::time_point last_report_ = Clock::now();
  Clock::time_point round_began_{};  // for the dirty rate (SessionLive)
  PhaseMachine phase_;
};

}  // namespace

DestinationReport run_destination(ReliableChannel& rel, const ReceiverDatagramFactory& make_datagram,
                                  const TargetFactory& make_target, const DestinationOptions& opts) {
  return DestinationRun(rel, make_datagram, make_target, opts).run();
}

}  // namespace hymig
