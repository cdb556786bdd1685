#include "bench/suite/shared_link.hpp"

#include <thread>

#include "bench/suite/pair_runner.hpp"
#include "core/error.hpp"

namespace hymig::bench {
namespace {

constexpr auto kHymigJoinsAfter = std::chrono::seconds(2);

// hymig and iperf3 on one pair at once: both receivers start, the sender runs iperf3 in a thread
// and hymig in the foreground (run_shared_link passes a spec without a peer cap). run_sender returns hymig's figures; competitor() iperf3's.
class SharedPeer final : public Peer {
 public:
  explicit SharedPeer(const Tools& tools) : hymig_(make_peer("hymig", tools)), iperf_(make_peer("iperf3", tools)) {}

  std::string name() const override { return "shared"; }
  std::optional<std::string> unavailable() const override {
    if (auto w = hymig_->unavailable()) return w;
    return iperf_->unavailable();
  }
  std::string start_receiver(const RunSpec& spec) override {
    const std::string a = hymig_->start_receiver(spec);
    return a + " " + iperf_->start_receiver(spec);
  }
  Measurement run_sender(const RunSpec& spec, const std::string& endpoints) override {
    const auto space = endpoints.find(' ');
    if (space == std::string::npos) throw Error(ErrorKind::protocol, "shared-link: expected two endpoints");
    const std::string hymig_ep = endpoints.substr(0, space), iperf_ep = endpoints.substr(space + 1);
    std::thread competitor([&] {
      try {
        competitor_ = iperf_->run_sender(spec, iperf_ep);
      } catch (const std::exception& e) {
        competitor_ = Measurement::failed(e.what());
      }
    });
    std::this_thread::sleep_for(kHymigJoinsAfter);
    Measurement m;
    try {
      m = hymig_->run_sender(spec, hymig_ep);
    } catch (const std::exception& e) {
      m = Measurement::failed(e.what());
    }
    competitor.join();
    return m;
  }
  nlohmann::json finish_receiver(const RunSpec& spec) override {
    nlohmann::json a = hymig_->finish_receiver(spec), b = iperf_->finish_receiver(spec);
    return {{"hymig", a.is_null() ? nlohmann::json::object() : a}, {"iperf3", b.is_null() ? nlohmann::json::object() : b}};
  }
  void merge(Measurement& m, const nlohmann::json& receiver) const override {
    hymig_->merge(m, receiver.value("hymig", nlohmann::json::object()));
  }
  Measurement competitor() const { return competitor_; }

 private:
  std::unique_ptr<Peer> hymig_, iperf_;
  Measurement competitor_;
};

}  // namespace

std::vector<Record> run_shared_link(const MpiWorld& world, const Tools& tools, const RunSpec& base,
                                    double iperf_seconds, int pair, unsigned reps) {
  std::vector<Record> out;
  // A record of the run `run` made (its cell carries the loss and the repetition).
  auto keep = [&](const std::string& transport, const Measurement& m, const RunSpec& run) {
    Record r;
    r.pair = pair;
    r.scenario = "shared-link";
    r.cell = run.cell;
    r.cell.transport = transport;
    r.cell.dirty_rate = 0;
    r.m = m;
    out.push_back(r);
  };
  RunSpec spec = base;
  spec.series = true;
  spec.peer_cap_seconds = 0;

  // Alone: the link's capacity as each one finds it.
  RunSpec iperf_alone = spec;
  iperf_alone.duration_seconds = iperf_seconds / 2;
  auto iperf = make_peer("iperf3", tools);
  world.barrier();
  if (auto m = run_on_pair(world, *iperf, iperf_alone)) keep("iperf3-alone", *m, iperf_alone);
  auto hymig = make_peer("hymig", tools);
  world.barrier();
  if (auto m = run_on_pair(world, *hymig, spec)) keep("hymig-alone", *m, spec);

  // Together.
  for (unsigned rep = 0; rep < reps; ++rep) {
    RunSpec together = spec;
    together.duration_seconds = iperf_seconds;
    together.cell.rep = rep;
    SharedPeer shared(tools);
    world.barrier();
    if (auto m = run_on_pair(world, shared, together)) {
      keep("hymig-shared", *m, together);
      keep("iperf3-shared", shared.competitor(), together);
    }
  }
  return out;
}

}  // namespace hymig::bench
