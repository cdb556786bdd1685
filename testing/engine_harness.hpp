// The one harness every engine test uses: both engines of a session over a pair of channels, the
// destination on its own thread, the reliable ends sealed with fresh session keys as the CLI's
// handshake leaves them. A test picks the channels (in-memory fakes by default, or real sockets
// and queue pairs), the target, and the options; it gets both reports back.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/mapping.hpp"
#include "engine/destination_engine.hpp"
#include "engine/source_engine.hpp"
#include "security/session_secrets.hpp"
#include "testing/fake_channel.hpp"

namespace hymig::harness {

// Both ends of one session's channels, raw (the harness seals the reliable ones).
struct EngineChannels {
  std::unique_ptr<ReliableChannel> source_rel, dest_rel;
  DatagramFactory source_dgram;
  ReceiverDatagramFactory dest_dgram;
  ReliableAcceptorFactory dest_reliable;  // where a session may move (RC)
  std::function<std::unique_ptr<ReliableChannel>(const std::string&)> connect_reliable;
  // Makes the link fail at once, so the destination notices a failed source without waiting for
  // its timeout (the fakes: cut_fake_reliable). Optional.
  std::function<void()> cut;
  ReliableChannel* raw_source = nullptr;  // the source's raw reliable end, for sabotage
};

// The fake reliable pair and a fake datagram pair with `imp`; `cut` set.
EngineChannels fake_channels(const Impairments& imp = {});

// A target whose memory outlives the session (to compare with the source), and its fate.
struct TargetRecord {
  Mapping memory;
  bool committed = false, discarded = false;
};
class KeptTarget : public TargetImage {
 public:
  explicit KeptTarget(TargetRecord& r) : r_(r) {}
  std::span<std::byte> memory() override { return r_.memory.span(); }
  std::string description() const override { return "test"; }
  void commit() override { r_.committed = true; }
  void discard() noexcept override { r_.discarded = true; }

 protected:
  TargetRecord& r_;
};
// Targets that map fresh memory into `record` and keep it there.
TargetFactory kept_targets(TargetRecord& record);

struct EngineRun {
  MigrationReport source;
  DestinationReport dest;
};

// Runs a session. The options' secrets and timeouts are set by the harness (5 s unless given);
// `during`, if set, runs on its own thread beside the source, with the raw source end (to sabotage).
EngineRun run_engines(EngineChannels channels, SourceImage& image, const TargetFactory& targets, SourceOptions sopts,
                      DestinationOptions dopts = {}, const std::function<void(ReliableChannel&)>& during = {});

}  // namespace hymig::harness
