#include "testing/engine_harness.hpp"

#include <mutex>
#include <thread>
#include <vector>

#include "protocol/handshake.hpp"

namespace hymig::harness {

EngineChannels fake_channels(const Impairments& imp) {
  EngineChannels c;
  auto rel = make_fake_reliable_pair();
  c.raw_source = rel.a.get();
  c.cut = [raw = rel.a.get()] { cut_fake_reliable(*raw); };
  c.source_rel = std::move(rel.a);
  c.dest_rel = std::move(rel.b);
  // One fake pair per lane: the source's n-th channel is the pair of the destination's n-th. Each
  // engine takes its channels when it asks for them; a --bulk tcp run never does.
  struct Lanes {
    std::mutex m;
    Impairments imp;
    std::vector<FakeDatagramPair> pairs;
    std::size_t taken_a = 0, taken_b = 0;
    FakeDatagramPair& pair(std::size_t i) {
      while (pairs.size() <= i) {
        Impairments lane = imp;
        lane.seed = imp.seed + 1000 * pairs.size();
        pairs.push_back(make_fake_datagram_pair(lane));
      }
      return pairs[i];
    }
  };
  auto lanes = std::make_shared<Lanes>();
  lanes->imp = imp;
  c.source_dgram = [lanes]() -> std::unique_ptr<DatagramChannel> {
    const std::lock_guard lock(lanes->m);
    return std::move(lanes->pair(lanes->taken_a++).a);
  };
  c.dest_dgram = [lanes](const Notify&) -> std::unique_ptr<DatagramChannel> {
    const std::lock_guard lock(lanes->m);
    return std::move(lanes->pair(lanes->taken_b++).b);
  };
  return c;
}

TargetFactory kept_targets(TargetRecord& record) {
  return [&record](const Notify& n) -> std::unique_ptr<TargetImage> {
    record.memory = map_anonymous(n.image_bytes, "test target");
    return std::make_unique<KeptTarget>(record);
  };
}

EngineRun run_engines(EngineChannels c, SourceImage& image, const TargetFactory& targets, SourceOptions sopts,
                      DestinationOptions dopts, const std::function<void(ReliableChannel&)>& during) {
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  ReliableChannel* raw_source = c.raw_source ? c.raw_source : c.source_rel.get();
  auto source_rel = seal_channel(std::move(c.source_rel), secrets, "control", Role::source);
  auto dest_rel = seal_channel(std::move(c.dest_rel), secrets, "control", Role::destination);
  sopts.secrets = &secrets;
  dopts.secrets = &secrets;
  if (c.connect_reliable) sopts.connect_reliable = c.connect_reliable;
  if (c.dest_reliable) dopts.make_reliable = c.dest_reliable;
  const std::chrono::milliseconds default_timeout{10000};  // SourceOptions' default: not set by the test
  if (sopts.peer_timeout == default_timeout) sopts.peer_timeout = std::chrono::milliseconds(5000);
  if (dopts.peer_timeout == default_timeout) dopts.peer_timeout = sopts.peer_timeout;

  EngineRun run;
  std::thread dest([&] { run.dest = run_destination(*dest_rel, c.dest_dgram, targets, dopts); });
  std::thread saboteur;
  if (during) saboteur = std::thread([&] { during(*raw_source); });
  run.source = run_source(*source_rel, c.source_dgram, image, sopts);
  if (saboteur.joinable()) saboteur.join();
  if (!run.source.committed() && c.cut) c.cut();  // let the destination notice at once
  dest.join();
  return run;
}

}  // namespace hymig::harness
