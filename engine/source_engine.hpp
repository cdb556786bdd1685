// The source side of a migration, after the handshake: notify, bulk rounds, pause, final delta,
// verify, commit. On any failure before commit the image is resumed and the destination told to
// discard; the report says why.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/pacer.hpp"
#include "engine/report.hpp"
#include "images/image.hpp"
#include "protocol/page_compressor.hpp"
#include "protocol/wire.hpp"
#include "security/session_secrets.hpp"
#include "transport/datagram_channel.hpp"
#include "transport/reliable_channel.hpp"

namespace hymig {

using DatagramFactory = std::function<std::unique_ptr<DatagramChannel>()>;

struct LiveProgress {
  std::uint32_t round = 0;
  std::uint64_t round_bytes_done = 0, round_bytes = 0;
  double rate = 0;  // bytes/s
  double loss = 0;
  double qdelay_s = 0;  // the path's queueing delay in the last sample
  const char* phase = "";
  std::uint64_t bytes_before_round = 0;  // page bytes moved by the rounds before this one
};

enum class FinalDatagrams { automatic, always, never };

struct SourceOptions {
  // The session's keys (open_secure_session): datagrams, a moved channel and the digest use them.
  // Required; `rel` is already sealed with them.
  const SessionSecrets* secrets = nullptr;
  // aead: datagrams encrypted and authenticated; mac: authenticated only (--encrypt off).
  DatagramProtection protection = DatagramProtection::aead;
  // udp or rdma_ud: datagram channels from the factory (which decides the kind); tcp: the pages go
  // over the reliable channel.
  BulkTransport bulk = BulkTransport::udp;
  // Datagram lanes: the factory is called this many times, each channel gets its own thread and
  // its share of the pages and of the rate (docs/protocol.md, "Lanes").
  std::uint32_t lanes = 1;
  std::size_t datagram_bytes = 65507;     // upper bound; the channels may lower it
  std::uint64_t initial_rate = 100ull << 20;
  std::uint64_t fixed_rate = 0;           // --rate R; 0 = adapt
  std::uint32_t downtime_ms = 300;
  std::uint32_t max_rounds = 30;
  std::chrono::milliseconds peer_timeout{10000};
  VerifyMode verify = VerifyMode::full;   // full: both sides rehash the whole image at the end
  std::function<void(const LiveProgress&)> on_progress;  // ~5 times a second
  // Each feedback sample and what the pacer made of it (every 10-200 ms): --trace-pacer.
  std::function<void(std::uint32_t round, const FeedbackSample&, const PacerState&)> on_pacer_sample;
  // rdma_rc: after notify/ready the session moves from the connection it started on to the channel
  // connect_reliable returns for the destination's ready.reliable_endpoint (a raw channel: the
  // engine seals it with the session's "rc" keys and answers the destination's bind challenge).
  ReliableTransport reliable = ReliableTransport::tcp;
  std::function<std::unique_ptr<ReliableChannel>(const std::string& endpoint)> connect_reliable;
  // How the final delta travels: write (one-sided writes into the destination's registered image,
  // where the reliable channel has them: RDMA RC) or send (pages messages); unset: kDefaultFinalDelta.
  // write falls back to send (the report says why) on a channel without one-sided writes or when
  // either side cannot register its image.
  std::optional<FinalDeltaMethod> final_delta;
  // The final delta as datagram rounds before the reliable channel: automatic (under loss),
  // always, never (tests).
  FinalDatagrams final_datagrams = FinalDatagrams::automatic;
  // zstd for datagram pages (engine/compression_governor.hpp decides per lane in auto).
  Compression compression = Compression::off;
  // Set (by a signal handler, or `hymig drain` past a timeout) to stop the migration: before the
  // pause it fails as "cancelled" (the image runs on, the destination discards); once paused the
  // final phase is short and runs to its end, so the guest never stays paused for a cancel.
  const std::atomic<bool>* cancel = nullptr;
};

// What "auto" means (docs/protocol.md, "Final delta", has the lab figures it was chosen by).
inline constexpr FinalDeltaMethod kDefaultFinalDelta = FinalDeltaMethod::write;

MigrationReport run_source(ReliableChannel& rel, const DatagramFactory& make_datagram, SourceImage& image,
                           const SourceOptions& opts);

}  // namespace hymig
