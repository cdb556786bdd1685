#include "bench/suite/pair_runner.hpp"

namespace hymig::bench {

namespace {
// The receiver's first message: 'E' endpoint, 'S' skip reason, 'F' failure.
constexpr char kEndpoint = 'E', kSkip = 'S', kFail = 'F';
}  // namespace

std::optional<Measurement> run_on_pair(const MpiWorld& world, Peer& peer, const RunSpec& spec) {
  const int partner = world.partner();
  if (!world.is_sender()) {
    bool started = false;
    if (auto why = peer.unavailable()) {
      world.send(partner, kSkip + *why);
    } else {
      try {
        world.send(partner, kEndpoint + peer.start_receiver(spec));
        started = true;
      } catch (const std::exception& e) {
        world.send(partner, kFail + std::string(e.what()));
      }
    }
    world.receive(partner);  // the sender is done
    nlohmann::json mine = nlohmann::json::object();
    if (started) {
      try {
        mine = peer.finish_receiver(spec);
      } catch (const std::exception& e) {
        mine = {{"error", e.what()}};
      }
    }
    world.send(partner, mine.is_null() ? "{}" : mine.dump());
    return std::nullopt;
  }

  const std::string first = world.receive(partner);
  Measurement m;
  if (first.empty()) {
    m = Measurement::failed("the receiver rank sent nothing");
  } else if (first[0] == kSkip) {
    m = Measurement::skipped("receiver: " + first.substr(1));
  } else if (first[0] == kFail) {
    m = Measurement::failed("receiver: " + first.substr(1));
  } else if (auto why = peer.unavailable()) {
    m = Measurement::skipped("sender: " + *why);
  } else {
    try {
      m = peer.run_sender(spec, first.substr(1));
    } catch (const std::exception& e) {
      m = Measurement::failed(e.what());
    }
  }
  world.send(partner, "done");
  nlohmann::json theirs;
  try {
    theirs = nlohmann::json::parse(world.receive(partner));
  } catch (const std::exception&) {
    theirs = nlohmann::json::object();
  }
  peer.merge(m, theirs);
  return m;
}

}  // namespace hymig::bench
