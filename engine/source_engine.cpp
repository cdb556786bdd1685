#include "engine/source_engine.hpp"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <thread>

#include "core/error.hpp"
#include "core/numeric_host.hpp"
#include "engine/datagram_streamer.hpp"
#include "engine/pacer.hpp"
#include "engine/session_phase.hpp"
#include "protocol/handshake.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/stop_point.hpp"
#include "protocol/wire.hpp"

namespace hymig {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The final delta by datagrams (docs/protocol.md, "Final delta"): used from this much datagram loss
// and this many pages, for at most this many rounds, until at most this many pages remain.
constexpr double kFinalDatagramLoss = 0.005;
constexpr std::uint64_t kFinalDatagramMinPages = 64;
constexpr int kFinalDatagramRounds = 4;
constexpr std::uint64_t kFinalRepairPages = 32;

// Whole-image rehash speed assumed when predicting the blackout (both sides hash in parallel).
constexpr double kVerifyBytesPerSecond = 8e9;
constexpr std::chrono::milliseconds kReadyTimeout{30000};

class SourceRun {
 public:
  SourceRun(ReliableChannel& rel, const DatagramFactory& make_datagram, SourceImage& image, const SourceOptions& opts)
      : rel_(&rel), make_datagram_(make_datagram), image_(image), opts_(opts),
        pacer_(RateConfig{opts.fixed_rate ? opts.fixed_rate : opts.initial_rate, opts.fixed_rate != 0}),
        phase_(Role::source, [this](SessionPhase p) {
          if (p >= SessionPhase::final_delta) live_.phase = to_string(p);  // in the rounds: the pacer's
        }) {
    peer_host_ = rel.peer_host();
    if (!opts_.secrets) throw std::logic_error("run_source: SourceOptions::secrets is required");
  }

  MigrationReport run() {
    start_ = Clock::now();
    const auto start = start_;
    report_.image_kind = image_.kind();
    report_.image_name = image_.name();
    report_.page_size = image_.page_size();
    report_.pages_total = image_.page_count();
    report_.bulk_transport = std::string(wire_name(opts_.bulk));
    report_.reliable_transport = rel_->transport_name();
    try {
      notify_and_ready();
      report_.setup_ms = seconds_since(start) * 1000;
      phase_.to(SessionPhase::rounds);
      bulk_rounds();
      final_phase();
    } catch (const std::exception& e) {
      fail(e.what());
    }
    if (report_.total_ms == 0) report_.total_ms = seconds_since(start) * 1000;
    report_.reliable_bytes = rel_->stats().bytes_sent;
    report_.bulk_bytes = bulk_bytes_sent();
    report_.bulk_datagrams = bulk_datagrams_sent();
    report_.lanes = static_cast<std::uint32_t>(lanes_.size());
    for (const auto& st : streamers_) {
      report_.compressed_pages += st->compressed_pages();
      report_.compressed_bytes += st->compressed_bytes();
    }
    report_.compression = std::string(to_string(compression_));
    if (!streamers_.empty()) {
      const CompressionGovernor& g = streamers_.front()->governor();
      report_.compression_ratio = g.ratio();
      report_.zstd_us_per_page = g.zstd_seconds_per_page() * 1e6;
      report_.idle_us_per_page = g.idle_seconds_per_page() * 1e6;
      report_.compression_trials = g.trials();
      report_.compression_active = g.active();
    }
    report_.final_rate = pacer_.rate();
    report_.random_loss = pacer_.random_loss();
    return report_;
  }

 private:
  void notify_and_ready() {
    if (sodium_init() < 0) throw Error(ErrorKind::io, "libsodium failed to initialise");
    randombytes_buf(&report_.session, sizeof report_.session);
    const std::uint64_t pages = image_.page_count();
    sent_hashes_.assign(pages, 0);
    rel_->set_limits(std::max<std::size_t>(1 << 20, pages / 8 + 1024), 0);
    rel_->set_io_timeout(opts_.peer_timeout);

    Notify n;
    n.session = report_.session;
    n.image_bytes = image_.bytes();
    n.page_size = static_cast<std::uint32_t>(image_.page_size());
    n.page_count = pages;
    n.image_kind = image_.kind();
    n.image_name = image_.name();
    n.bulk = opts_.bulk;
    n.verify = opts_.verify;
    n.reliable = opts_.reliable;
    n.vm_definition = image_.vm_definition();
    n.protection = opts_.protection;
    n.compressed_pages = opts_.compression != Compression::off && uses_datagrams(opts_.bulk) &&
                         image_.page_size() <= kMaxCompressiblePage;
    compression_ = n.compressed_pages ? opts_.compression : Compression::off;
    // The final delta by one-sided writes: asked for in notify when the reliable channel the
    // session ends up on may have them (RC); used if the destination then exposes its image.
    if (opts_.final_delta.value_or(kDefaultFinalDelta) == FinalDeltaMethod::write) {
      if (opts_.reliable == ReliableTransport::rdma_rc || rel_->image_writer()) n.final_delta = FinalDeltaMethod::write;
      else report_.final_delta_note = "no one-sided writes on " + rel_->transport_name();
    }
    if (uses_datagrams(opts_.bulk)) {
      n.lanes = std::clamp<std::uint32_t>(opts_.lanes, 1, kMaxLanes);
      std::size_t datagram_bytes = std::min(opts_.datagram_bytes, std::size_t{65535});
      for (std::uint32_t l = 0; l < n.lanes; ++l) {
        auto ch = make_datagram_();
        n.bulk = ch->wire_kind();
        report_.bulk_transport = ch->transport_name();
        n.bulk_endpoints.push_back(ch->local_endpoint());
        datagram_bytes = std::min(datagram_bytes, ch->max_datagram());
        lanes_.push_back(std::move(ch));
      }
      n.datagram_bytes = static_cast<std::uint32_t>(datagram_bytes);
    }
    rel_->send(wire(MsgType::notify), encode_notify(n));
    stop_point(Role::source, "notify");
    // The destination may be starting a VM to receive into (a libvirt domain on a loaded host
    // takes seconds): ready gets at least 30 s. Nothing is paused meanwhile.
    const Ready ready = decode_ready(expect(*rel_, MsgType::ready, std::max(opts_.peer_timeout, kReadyTimeout)).body);
    if (opts_.reliable != ReliableTransport::tcp) move_reliable(ready.reliable_endpoint);
    asked_write_ = n.final_delta == FinalDeltaMethod::write;
    if (asked_write_) prepare_writes();

    if (!lanes_.empty()) {
      if (ready.bulk_endpoints.size() != lanes_.size())
        throw Error(ErrorKind::protocol, "the destination answered " + std::to_string(ready.bulk_endpoints.size()) +
                                             " datagram endpoints for " + std::to_string(lanes_.size()) + " lanes");
      std::size_t max_datagram = n.datagram_bytes;
      for (std::uint32_t l = 0; l < lanes_.size(); ++l) {
        // The stream goes to the host that authenticated, nowhere else.
        const std::string host = lanes_[l]->endpoint_host(ready.bulk_endpoints[l]);
        if (!same_numeric_host(host, peer_host_))
          throw Error(ErrorKind::protocol, "the destination named a datagram endpoint on another host (" + printable(host, 64) +
                                               ", the connection's peer is " + peer_host_ + ")");
        lanes_[l]->connect(ready.bulk_endpoints[l]);
        max_datagram = std::min(max_datagram, lanes_[l]->max_datagram());
      }
      if (ready.datagram_bytes == 0 || ready.datagram_bytes > max_datagram)
        throw Error(ErrorKind::protocol, "the destination chose datagrams of " + std::to_string(ready.datagram_bytes) +
                                             " bytes; this side can send at most " + std::to_string(max_datagram));
      report_.datagram_bytes = ready.datagram_bytes;
      const DatagramLayout layout = make_layout(image_.page_size(), ready.datagram_bytes);
      for (std::uint32_t l = 0; l < lanes_.size(); ++l) {
        streamers_.push_back(std::make_unique<DatagramStreamer>(*lanes_[l], layout, report_.session, image_.memory(),
                                                                sent_hashes_, opts_.peer_timeout, opts_.protection,
                                                                *opts_.secrets, l, compression_));
      }
    }
  }

  // From here on every message goes over the new channel; the first connection stays open, idle.
  void move_reliable(const std::string& endpoint) {
    if (endpoint.empty() || !opts_.connect_reliable)
      throw Error(ErrorKind::protocol, "the destination gave no " + std::string(wire_name(opts_.reliable)) + " endpoint to move the session to");
    moved_rel_ = seal_channel(opts_.connect_reliable(endpoint), *opts_.secrets, "rc", Role::source);
    moved_rel_->set_limits(std::max<std::size_t>(1 << 20, image_.page_count() / 8 + 1024), 0);
    moved_rel_->set_io_timeout(opts_.peer_timeout);
    // The destination's challenge, sealed: it comes from the session's peer. The answer proves
    // this connection is the session's.
    Bind bind = decode_bind(expect(*moved_rel_, MsgType::bind, opts_.peer_timeout).body);
    bind.session = report_.session;
    moved_rel_->send(wire(MsgType::bind), encode_bind(bind));
    rel_ = moved_rel_.get();
    report_.reliable_transport = rel_->transport_name();
  }

  // Registers the source image once with the reliable channel, for the final delta's writes
  // (outside the blackout). Failing that, the final delta goes as pages messages.
  void prepare_writes() {
    ImageWriter* w = rel_->image_writer();
    if (!w) {
      report_.final_delta_note = "no one-sided writes on " + rel_->transport_name();
      return;
    }
    try {
      w->register_source(image_.memory());
      writer_ = w;
    } catch (const Error& e) {
      report_.final_delta_note = std::string("source image not registered: ") + e.what();
    }
  }

  // Reads whatever the destination sent meanwhile without waiting: progress feeds the pacer.
  void poll_feedback() {
    check_cancel();
    while (auto m = rel_->receive(std::chrono::milliseconds(0))) handle_during_round(*m);
    if (!lanes_.empty() && seconds_since(last_heard_) * 1000 > static_cast<double>(opts_.peer_timeout.count()))
      throw Error(ErrorKind::timeout, "no progress report from the destination for " +
                                          std::to_string(opts_.peer_timeout.count() / 1000) +
                                          " s: link down or destination gone");
    if (opts_.on_progress && seconds_since(last_progress_call_) > 0.2) {
      last_progress_call_ = Clock::now();
      opts_.on_progress(live_);
    }
  }

  // Reports are cumulative: counters that go backwards, or claim more than was sent, are a
  // destination that lies (and would steer the pacer): the session ends.
  void check_progress(const Progress& p) {
    if (p.datagrams < last_progress_.datagrams || p.bytes < last_progress_.bytes ||
        p.next_seq < last_progress_.next_seq || p.invalid < last_progress_.invalid)
      throw Error(ErrorKind::protocol, "the destination's progress counters went backwards");
    // Against what the lanes have made so far (a lane thread counts a datagram as sent only after
    // the kernel took it, which the receiver may see first).
    std::uint64_t sealed_bytes = 0;
    for (const auto& st : streamers_) sealed_bytes += st->bytes_sealed();
    if (lanes_.empty() || p.datagrams > bulk_next_seq() || p.bytes > sealed_bytes || p.next_seq > bulk_next_seq())
      throw Error(ErrorKind::protocol, "the destination reports more datagrams than were sent");
    last_progress_ = p;
  }

  void handle_during_round(const Message& m) {
    last_heard_ = Clock::now();
    switch (static_cast<MsgType>(m.type)) {
      case MsgType::progress: {
        const Progress p = decode_progress(m.body);
        check_progress(p);
        if (auto s = tracker_.on_progress(p, bulk_bytes_sent(), Clock::now(), pacer_.starting())) {
          pacer_.on_sample(*s);
          if (opts_.on_pacer_sample) opts_.on_pacer_sample(live_.round, *s, pacer_.state());
          live_.loss = s->loss;
          live_.qdelay_s = s->qdelay_s;
        }
        live_.rate = pacer_.rate();
        if (phase_.now() == SessionPhase::rounds) live_.phase = pacer_.phase();
        return;
      }
      default:
        reject_message(*rel_, m, "the destination",
                       std::string("unexpected ") + to_string(static_cast<MsgType>(m.type)) +
                           " from the destination during a round");
    }
  }

  // Sends the pages of `set` as pages messages on the reliable channel, each page copied out of
  // the image once: the hash recorded is the hash of the copy that goes (the guest keeps writing
  // while rounds are sent).
  // record_hashes: note each page's hash in sent_hashes_ (dirty detection, the fast digest).
  // by_write: each page goes by a sealed one-sided write to its place in the destination's image,
  // and a written message (the pages and their tags) follows each batch: it travels after the
  // batch's writes, so when the destination reads it those pages are in place.
  void send_pages_reliable(std::uint32_t round, const Bitmap& set, bool poll_between, bool record_hashes,
                           bool by_write = false) {
    std::vector<std::uint64_t> batch;
    std::vector<ConstBuffer> parts;
    std::vector<AeadTag> tags;
    batch.reserve(kMaxPagesPerMessage);
    parts.reserve(kMaxPagesPerMessage);
    const std::size_t ps = image_.page_size();
    const std::byte* base = image_.memory().data();
    // Copied pages go in messages of up to 128 KiB, so the copies and the channel's sealed record
    // stay in the cache between the copy and the seal.
    const std::size_t per_message =
        by_write ? kMaxPagesPerMessage : std::clamp<std::size_t>((128u << 10) / ps, 1, kMaxPagesPerMessage);
    std::vector<std::byte> copies(by_write ? 0 : per_message * ps);
    auto flush = [&] {
      if (batch.empty()) return;
      if (by_write) rel_->send(wire(MsgType::written), encode_written(round, batch, tags));
      else rel_->send_with_payload(wire(MsgType::pages), encode_pages_header(round, batch), parts);
      live_.round_bytes_done += batch.size() * ps;
      batch.clear();
      parts.clear();
      tags.clear();
      if (poll_between) poll_feedback();
    };
    set.for_each_set([&](std::uint64_t p) {
      if (by_write) {
        // Only the final delta goes by writes: the guest is paused, the image holds still.
        if (record_hashes) sent_hashes_[p] = hash_page(base + p * ps, ps);
        tags.push_back(writer_->write_sealed(p * ps, ps));
      } else {
        std::byte* const copy = copies.data() + batch.size() * ps;
        copy_guest_page(copy, base + p * ps, ps);
        if (record_hashes) sent_hashes_[p] = hash_page(copy, ps);
        parts.push_back({copy, ps});
      }
      batch.push_back(p);
      if (batch.size() == per_message) flush();
    });
    flush();
  }

  Bitmap await_round_report(std::uint32_t round) {
    const auto deadline = Clock::now() + opts_.peer_timeout;
    while (Clock::now() < deadline) {
      check_cancel();
      auto m = rel_->receive(std::chrono::milliseconds(50));
      if (!m) continue;
      if (static_cast<MsgType>(m->type) != MsgType::round_report) {
        handle_during_round(*m);
        continue;
      }
      Bitmap missing;
      const auto r = decode_page_set(m->body, image_.page_count(), missing);
      if (r != round)
        throw Error(ErrorKind::protocol, "round report for round " + std::to_string(r) + ", expected " + std::to_string(round));
      last_missing_ = missing;
      return missing;
    }
    throw Error(ErrorKind::timeout, "no report for round " + std::to_string(round) + " from the destination within " +
                                        std::to_string(opts_.peer_timeout.count() / 1000) + " s");
  }

  // Bytes/s the final delta is expected to move at over the reliable channel.
  double final_rate_estimate(double round_rate, double loss) const {
    if (lanes_.empty()) return round_rate;
    // A loss-driven reliable stream (TCP, RC) collapses under random loss (here: 1 % costs
    // ~30 %, 5 % costs ~95 %); be pessimistic so more rounds go over the datagram channel.
    return round_rate * std::min(1.0, 0.01 / std::max(loss, 1e-9));
  }

  void bulk_rounds() {
    const std::uint64_t pages = image_.page_count();
    const std::size_t ps = image_.page_size();
    Bitmap to_send(pages);
    to_send.set_all();
    image_.start_dirty_tracking();
    last_heard_ = Clock::now();
    std::uint64_t prev_count = pages;
    int stalls = 0;

    for (std::uint32_t round = 0;; ++round) {
      check_cancel();
      const auto round_start = Clock::now();
      RoundStats rs;
      rs.round = round;
      rs.pages = to_send.count();
      live_ = {round, 0, rs.pages * ps, pacer_.rate(), live_.loss, live_.qdelay_s, pacer_.phase(), bytes_of_finished_rounds()};
      const std::uint64_t bytes_before = bulk_bytes_sent();
      // Holes of the image's file go by datagram as zero entries, unread (found anew each round);
      // round 0 (every page) names them to the destination, which populates its target ahead of
      // the stream everywhere else. The reliable channel sends every page whole.
      Bitmap holes(pages);
      if (!lanes_.empty()) image_.find_zero_pages(holes);
      rel_->send(wire(MsgType::round_begin), encode_round_begin(round, to_send, round == 0 ? holes : Bitmap(pages)));
      stop_point(Role::source, "round", round);
      const std::uint64_t lost_before = tracker_.datagrams_lost();
      const std::uint64_t sent_before = bulk_datagrams_sent();
      if (!lanes_.empty()) {
        const std::uint64_t zero_pages = stream_round(round, to_send, holes);
        rs.bytes = bulk_bytes_sent() - bytes_before;
        if (round == 0) report_.zero_pages = zero_pages;
        rel_->send(wire(MsgType::round_end), encode_round_end({round, bulk_next_seq()}));
      } else {
        send_pages_reliable(round, to_send, true, true);
        rs.bytes = rs.pages * ps;  // every page of the set goes, whole
        rel_->send(wire(MsgType::round_end), encode_round_end({round, 0}));
      }
      Bitmap next = await_round_report(round);
      rs.missing_after = next.count();
      Bitmap dirty(pages);
      image_.collect_dirty(dirty, sent_hashes_);
      rs.dirty_after = dirty.count();
      next |= dirty;
      // Pages modified during this round: if the rounds stop here they go in the final delta.
      pending_dirty_ = std::move(dirty);
      rs.seconds = seconds_since(round_start);
      rs.rate = pacer_.rate();
      if (!lanes_.empty()) {
        const std::uint64_t sent = bulk_datagrams_sent() - sent_before;
        // A datagram counted lost in an earlier round may have come in since (reordered, late).
        const std::uint64_t lost_now = tracker_.datagrams_lost();
        const std::uint64_t lost = lost_now > lost_before ? lost_now - lost_before : 0;
        rs.loss = sent ? std::min(1.0, static_cast<double>(lost) / sent) : 0.0;
      }
      report_.round_stats.push_back(rs);
      report_.rounds = round + 1;

      const std::uint64_t next_count = next.count();
      const double round_rate = rs.seconds > 0 ? rs.pages * ps / rs.seconds : 1e9;
      const double est_s = next_count * ps / final_rate_estimate(round_rate, std::max(rs.loss, pacer_.random_loss())) +
                           (opts_.verify == VerifyMode::full ? image_.bytes() / kVerifyBytesPerSecond : 0.0);
      if (est_s * 1000 <= opts_.downtime_ms) {
        report_.stop_reason = "converged";
        break;
      }
      if (report_.rounds >= opts_.max_rounds) {
        report_.stop_reason = "max-rounds";
        check_missing_fits();
        break;
      }
      if (round > 0 && next_count * 100 >= prev_count * 95) {
        if (++stalls >= 2) {
          report_.stop_reason = "not-converging";
          check_missing_fits();
          break;
        }
      } else {
        stalls = 0;
      }
      prev_count = next_count;
      to_send = std::move(next);
    }
  }

  // The rounds ended without converging. Pages the guest keeps modifying are precopy's usual
  // trouble and still go in the final delta; so do the pages a lossy or slow path lost in the last
  // round (the final delta goes by datagram rounds under loss): a busy link lengthens the blackout
  // as a busy guest does, and aborting there failed honest migrations at 5 % loss on a loaded host.
  // But when the destination reports the last round missing as if most datagrams were lost, the
  // datagram path has failed (it loses everything, or a destination claims so) and the blackout
  // would be whatever it says: when those pages could not move within the downtime target even at
  // the stream's own rate, give up before pausing. A page of k chunks needs all k: half the
  // datagrams lost is 1 - 0.5^k of the pages (at 30 % datagram loss a 3-chunk page is lost at 66 %).
  void check_missing_fits() {
    if (streamers_.empty()) return;
    const std::uint64_t missing = last_missing_.count();
    const std::uint64_t last_round_pages = report_.round_stats.back().pages;
    const double failing = 1.0 - std::pow(0.5, streamers_.front()->layout().chunk_count);
    if (static_cast<double>(missing) <= failing * static_cast<double>(last_round_pages)) return;
    const double est_s = missing * static_cast<double>(image_.page_size()) / std::max(pacer_.rate(), 1.0);
    if (est_s * 1000 > opts_.downtime_ms)
      throw Error(ErrorKind::protocol, "the destination still reports " + std::to_string(missing) + " of the " +
                                           std::to_string(last_round_pages) + " pages of round " +
                                           std::to_string(report_.rounds - 1) +
                                           " missing: the datagram path is failing, and they would not move within the "
                                           "downtime target; not pausing");
  }

  // ---- lanes ----------------------------------------------------------------------------------

  std::uint64_t bulk_bytes_sent() const {
    std::uint64_t n = 0;
    for (const auto& s : streamers_) n += s->bytes_sent();
    return n;
  }
  std::uint64_t bulk_datagrams_sent() const {
    std::uint64_t n = 0;
    for (const auto& s : streamers_) n += s->datagrams_sent();
    return n;
  }
  // The sum of every lane's next sequence number (what round-end and progress compare).
  std::uint64_t bulk_next_seq() const {
    std::uint64_t n = 0;
    for (const auto& s : streamers_) n += s->next_seq();
    return n;
  }

  // A round's pages on every lane at once: each lane on its own thread sends its share of `set`
  // (lane_of_page) at its share of the rate, while this thread reads the destination's reports,
  // paces, and reports progress. A lane that fails stops the others; the first error is thrown.
  // Returns the zero pages the round sent.
  std::uint64_t stream_round(std::uint32_t round, const Bitmap& set, const Bitmap& holes) {
    struct Stopped {};
    const auto n = static_cast<std::uint32_t>(streamers_.size());
    std::vector<Bitmap> shares;
    if (n > 1) shares = split_by_lane(set, n);
    std::atomic<bool> stop{false};
    std::atomic<unsigned> running{n};
    std::vector<std::exception_ptr> errors(n);
    std::vector<std::uint64_t> zero_pages(n, 0);
    lane_rate_.store(pacer_.rate() / n);
    const std::uint64_t bytes_before = bulk_bytes_sent();
    std::vector<std::thread> threads;
    struct Joiner {
      std::vector<std::thread>& threads;
      std::atomic<bool>& stop;
      ~Joiner() {
        stop = true;
        for (auto& t : threads)
          if (t.joinable()) t.join();
      }
    } joiner{threads, stop};
    for (std::uint32_t l = 0; l < n; ++l)
      threads.emplace_back([&, l] {
        try {
          zero_pages[l] = streamers_[l]
                              ->send_round(
                                  round, n > 1 ? shares[l] : set, holes,
                                  [&] { return lane_rate_.load(std::memory_order_relaxed); },
                                  [&] {
                                    if (stop.load(std::memory_order_relaxed)) throw Stopped{};
                                  })
                              .zero_pages;
        } catch (const Stopped&) {
        } catch (...) {
          errors[l] = std::current_exception();
          stop = true;
        }
        running.fetch_sub(1);
      });
    while (running.load() > 0 && !stop.load()) {
      if (auto m = rel_->receive(std::chrono::milliseconds(1))) handle_during_round(*m);
      poll_feedback();
      lane_rate_.store(pacer_.rate() / n, std::memory_order_relaxed);
      live_.round_bytes_done = bulk_bytes_sent() - bytes_before;
    }
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    std::uint64_t zeros = 0;
    for (auto z : zero_pages) zeros += z;
    return zeros;
  }

  // `set` split by lane_of_page (whole words: a block is a multiple of 64 pages).
  static std::vector<Bitmap> split_by_lane(const Bitmap& set, std::uint32_t lanes) {
    std::vector<Bitmap> shares(lanes, Bitmap(set.size()));
    const auto words = set.words();
    constexpr std::uint64_t kWordsPerBlock = kLaneBlockPages / 64;
    for (std::size_t w = 0; w < words.size(); ++w)
      if (words[w]) shares[(w / kWordsPerBlock) % lanes].words()[w] = words[w];
    return shares;
  }

  // For live progress: what the rounds so far moved (a handful of rounds, summed when one starts).
  std::uint64_t bytes_of_finished_rounds() const {
    std::uint64_t n = 0;
    for (const auto& r : report_.round_stats) n += r.bytes;
    return n;
  }

  void check_cancel() const {
    if (phase_.now() < SessionPhase::final_delta && opts_.cancel && opts_.cancel->load(std::memory_order_relaxed))
      throw Error(ErrorKind::cancelled, "cancelled before the pause");
  }

  void final_phase() {
    check_cancel();
    const std::uint64_t pages = image_.page_count();
    pause_time_ = Clock::now();
    phase_.to(SessionPhase::final_delta);  // before pause(): a pause that fails half-way must still be undone
    image_.pause();
    auto lap = pause_time_;
    auto split = [&lap] {  // ms since the previous split
      const auto now = Clock::now();
      const double ms = std::chrono::duration<double, std::milli>(now - lap).count();
      lap = now;
      return ms;
    };
    report_.downtime_parts.pause_ms = split();
    rel_->send(wire(MsgType::pause), {});

    Bitmap missing;
    std::optional<ImageWindow> window;
    for (;;) {
      const Message m = expect_missing_or_window();
      if (static_cast<MsgType>(m.type) == MsgType::missing) {
        decode_page_set(m.body, pages, missing);
        // No datagram was sent since the last report: nothing it had can be missing now.
        if (!lanes_.empty() && !missing.is_subset_of(last_missing_))
          throw Error(ErrorKind::protocol, "the destination reports pages missing that it had already received");
        break;
      }
      window = decode_image_window(m.body);
    }
    bool by_write = false;
    if (writer_ && window) {
      writer_->set_remote_target(RemoteImage{window->address, window->key, window->bytes});
      by_write = true;
    } else if (writer_) {
      report_.final_delta_note = "the destination exposed no image for writes";
    }
    report_.final_delta_method = by_write ? "write" : "send";
    Bitmap final_set = std::move(pending_dirty_);
    if (final_set.size() != pages) final_set = Bitmap(pages);
    image_.collect_dirty(final_set, sent_hashes_);
    report_.modified_pages = final_set.count();
    report_.missing_pages = missing.count();
    final_set |= missing;
    report_.final_delta_pages = final_set.count();
    stop_point(Role::source, "final-delta");

    // The image is frozen now: with full verification, rehash all of it while the delta streams.
    Digest full_digest{};
    std::thread hasher;
    if (opts_.verify == VerifyMode::full) {
      hasher = std::thread([&] {
        Bitmap holes(pages);
        image_.find_zero_pages(holes);
        full_digest = keyed_digest_of_image(*opts_.secrets, image_.memory(), image_.page_size(), holes);
      });
    }
    struct Joiner {
      std::thread& t;
      ~Joiner() {
        if (t.joinable()) t.join();
      }
    } joiner{hasher};

    live_.round_bytes = report_.final_delta_pages * image_.page_size();
    live_.round_bytes_done = 0;
    live_.bytes_before_round = bytes_of_finished_rounds();
    // Under loss the reliable channel crawls (loss-driven: TCP and RC collapse): the delta goes
    // as datagram rounds first, and the reliable channel repairs only what is still missing.
    if (use_datagrams_for_final(final_set)) final_set = final_datagram_rounds(std::move(final_set));
    report_.final_reliable_pages = final_set.count();
    // With full verification the digest comes from the rehash running meanwhile: no page hashes.
    send_pages_reliable(kFinalRound, final_set, false, opts_.verify != VerifyMode::full, by_write);
    rel_->send(wire(MsgType::final_end), encode_u64(report_.final_delta_pages));
    report_.downtime_parts.final_delta_ms = split();
    if (hasher.joinable()) hasher.join();

    const Digest mine = opts_.verify == VerifyMode::full ? full_digest : keyed_digest_of_hashes(*opts_.secrets, sent_hashes_);
    report_.digest = to_hex(mine);
    phase_.to(SessionPhase::verifying);
    rel_->send(wire(MsgType::digest), encode_digest(mine));
    stop_point(Role::source, "verify");
    const Verify v = decode_verify(expect(*rel_, MsgType::verify, opts_.peer_timeout).body);
    if (v.missing_pages)
      throw Error(ErrorKind::verify, "the destination still lacks " + std::to_string(v.missing_pages) + " pages after the final delta");
    if (!v.ok || v.digest != mine)
      throw Error(ErrorKind::verify, "image digests differ: source " + to_hex(mine) + ", destination " + to_hex(v.digest));
    report_.verified = true;
    report_.downtime_parts.verify_ms = split();

    if (image_.has_device_state()) {
      stop_point(Role::source, "device-state");
      move_device_state();
      report_.downtime_parts.device_state_ms = split();
    }

    // A destination already gone (its connection closed or reset: killed, or given up after its
    // --timeout with an abort) cannot take the commit: found now, the source resumes (exit 1)
    // instead of staying paused for an operator (exit 3). The window left is the commit's flight.
    if (const auto early = rel_->receive(std::chrono::milliseconds(0)))
      reject_message(*rel_, *early, "the destination",
                     std::string("unexpected ") + to_string(static_cast<MsgType>(early->type)) + " before commit");
    phase_.to(SessionPhase::committing);
    rel_->send(wire(MsgType::commit), {});
    stop_point(Role::source, "commit");
    expect(*rel_, MsgType::committed, opts_.peer_timeout);
    report_.downtime_parts.commit_ms = split();
    report_.downtime_ms = seconds_since(pause_time_) * 1000;
    report_.outcome = Outcome::committed;
    phase_.to(SessionPhase::committed);
    // The workload runs at the destination: the migration's time ends here. Ending the source's
    // copy (a QEMU takes ~1 s to exit) is reported apart.
    report_.total_ms = seconds_since(start_) * 1000;
    const auto cleanup_start = Clock::now();
    try {
      image_.handed_over();
    } catch (const std::exception& e) {
      // Committed all the same: the workload runs at the destination; the source copy is stopped
      // (paused) but could not be ended. Said in the report, for the operator to finish.
      report_.cleanup_error = e.what();
    }
    report_.cleanup_ms = seconds_since(cleanup_start) * 1000;
  }

  // The final delta by datagrams: when the path loses datagrams (the reliable channel would crawl)
  // and the delta is worth a round. SourceOptions::final_datagrams forces it on or off.
  bool use_datagrams_for_final(const Bitmap& set) const {
    if (lanes_.empty() || set.count() == 0) return false;
    if (opts_.final_datagrams != FinalDatagrams::automatic) return opts_.final_datagrams == FinalDatagrams::always;
    const double loss = std::max(pacer_.random_loss(), report_.round_stats.empty() ? 0.0 : report_.round_stats.back().loss);
    return loss >= kFinalDatagramLoss && set.count() >= kFinalDatagramMinPages;
  }

  // Paused: the set goes as datagram rounds (the destination takes them as it takes bulk rounds,
  // each newer than the last), until what it still lacks is a few pages or the rounds run out;
  // returns that rest, for the reliable channel.
  Bitmap final_datagram_rounds(Bitmap set) {
    const std::uint64_t pages = image_.page_count();
    Bitmap holes(pages);
    image_.find_zero_pages(holes);  // frozen: found once
    for (int k = 0; k < kFinalDatagramRounds && set.count() > kFinalRepairPages; ++k) {
      const std::uint32_t round = report_.rounds + report_.final_datagram_rounds;
      report_.final_datagram_pages += set.count();
      ++report_.final_datagram_rounds;
      rel_->send(wire(MsgType::round_begin), encode_round_begin(round, set, Bitmap(pages)));
      stream_round(round, set, holes);
      rel_->send(wire(MsgType::round_end), encode_round_end({round, bulk_next_seq()}));
      set = await_round_report(round);
    }
    if (report_.final_datagram_rounds > 0) {
      // No datagram may land from here on: the reliable channel (or RDMA writes) fills the rest,
      // and a straggler landing on a page as it is written would spoil it.
      rel_->send(wire(MsgType::datagrams_done), {});
      expect(*rel_, MsgType::datagrams_done, opts_.peer_timeout);
    }
    return set;
  }

  // After pause: missing, preceded by image-window when the destination exposed its image for the
  // writes asked for in notify (and only then).
  Message expect_missing_or_window() {
    const auto deadline = Clock::now() + opts_.peer_timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto m = rel_->receive(std::max(left, std::chrono::milliseconds(0)));
      if (!m) throw Error(ErrorKind::timeout, "no missing report from the destination within " +
                                                  std::to_string(opts_.peer_timeout.count() / 1000) + " s");
      const auto type = static_cast<MsgType>(m->type);
      if (type == MsgType::missing) return *m;
      if (type == MsgType::image_window && asked_write_) return *m;
      if (type == MsgType::progress) continue;
      reject_message(*rel_, *m, "the destination",
                     std::string("expected missing, got ") + to_string(type) + " after pause");
    }
  }

  // The memory verified on both sides: the image's device state goes over the reliable channel in
  // pieces as the image produces it; the destination answers once it applied all of it.
  void move_device_state() {
    phase_.to(SessionPhase::device_state);
    StreamDigest digest;
    std::uint64_t offset = 0;
    image_.produce_device_state([&](std::span<const std::byte> bytes) {
      while (!bytes.empty()) {
        const auto piece = bytes.first(std::min(bytes.size(), kMaxDeviceStatePiece));
        const ConstBuffer part{piece.data(), piece.size()};
        rel_->send_with_payload(wire(MsgType::device_state), encode_device_state_header(offset), {&part, 1});
        digest.update(piece);
        offset += piece.size();
        bytes = bytes.subspan(piece.size());
      }
    });
    if (offset == 0) throw Error(ErrorKind::io, "the image produced no device state");
    report_.device_state_bytes = offset;
    rel_->send(wire(MsgType::device_state_end), encode_device_state_end({offset, digest.digest()}));
    expect(*rel_, MsgType::device_state_loaded, opts_.peer_timeout);
  }

  // What a failure means follows from the phase it struck in (engine/session_phase.hpp).
  void fail(const std::string& why) {
    const SessionPhase at = phase_.now();
    if (at == SessionPhase::committed || at == SessionPhase::failed || at == SessionPhase::unknown) return;  // ended
    const SourceFailure f = source_failure(at);
    const bool paused = at >= SessionPhase::final_delta;
    report_.outcome = f.outcome;
    if (f.outcome == Outcome::unknown) {
      // The destination may or may not have resumed: never resume here (the workload must not run
      // twice). An operator decides from the destination's log.
      report_.error = "commit sent but not confirmed (" + why +
                      "); the source stays paused: check the destination before resuming it";
      if (paused) report_.downtime_ms = seconds_since(pause_time_) * 1000;
      phase_.to(SessionPhase::unknown);
      return;
    }
    report_.error = why;
    send_abort_quietly(*rel_, "source failed: " + why);
    if (f.resume_image) {
      try {
        image_.resume();
      } catch (const std::exception& e) {
        report_.error += std::string("; resuming the source also failed: ") + e.what();
      }
    }
    if (paused) report_.downtime_ms = seconds_since(pause_time_) * 1000;
    phase_.to(SessionPhase::failed);
  }

  ReliableChannel* rel_;  // the connection the session started on, or the RC channel it moved to
  Progress last_progress_{};
  Bitmap last_missing_;   // the destination's last round report
  std::unique_ptr<ReliableChannel> moved_rel_;
  bool asked_write_ = false;              // notify asked for the final delta by write
  ImageWriter* writer_ = nullptr;  // rel_'s, with the source image registered: final delta by write
  const DatagramFactory& make_datagram_;
  SourceImage& image_;
  SourceOptions opts_;
  MigrationReport report_;

  std::vector<std::unique_ptr<DatagramChannel>> lanes_;      // one datagram channel per lane
  Compression compression_ = Compression::off;  // what notify allowed
  std::vector<std::unique_ptr<DatagramStreamer>> streamers_;  // and its streamer
  std::atomic<double> lane_rate_{0};                          // each lane's share of the pacing rate
  std::vector<std::uint64_t> sent_hashes_;
  Bitmap pending_dirty_;  // modified during the last round, not yet resent
  FeedbackTracker tracker_;
  RateController pacer_;
  LiveProgress live_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_heard_ = Clock::now();
  Clock::time_point last_progress_call_ = Clock::now();
  Clock::time_point pause_time_{};
  PhaseMachine phase_;  // its observer writes live_: declared after it
  std::string peer_host_;  // the authenticated connection's peer: datagrams go there only
};

}  // namespace

MigrationReport run_source(ReliableChannel& rel, const DatagramFactory& make_datagram, SourceImage& image,
                           const SourceOptions& opts) {
  return SourceRun(rel, make_datagram, image, opts).run();
}

}  // namespace hymig
