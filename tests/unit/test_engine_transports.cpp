// One engine suite, every transport: the same migration (a dirtying synthetic image, the
// destination byte-for-byte equal to the paused source) over each channel pair the product can
// choose — the in-memory fake, UDP+TCP, TCP only, RoCE UD+RC, the mixed UD+TCP, and RC only.
// The RDMA pairs need two RoCE ports (rdma_rxe in the Soft-RoCE lab, tests/lab: rxe0 at
// HYMIG_LAB_IP_A, rxe1 at HYMIG_LAB_IP_B) and skip with the reason elsewhere (and in a build
// without rdma-core, HYMIG_WITH_VERBS=OFF).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>

#include "cli/command.hpp"
#include "images/synthetic_image.hpp"
#include "runtime/session_backends.hpp"
#include "tcp/tcp_connect.hpp"
#include "tcp/tcp_listener.hpp"
#include "testing/engine_harness.hpp"
#ifdef HYMIG_HAVE_VERBS
#include "verbs/device_discovery.hpp"
#include "verbs/rc_connect.hpp"
#include "verbs/rc_listener.hpp"
#endif

namespace hymig {
namespace {

constexpr auto kTimeout = std::chrono::milliseconds(20000);  // Soft-RoCE under TCG is slow

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

enum class Reliable { fake, tcp, rc, tcp_then_rc };  // tcp_then_rc: the session moves after ready
enum class Bulk { fake, udp, ud, over_reliable };

struct Pair {
  const char* name;
  Reliable reliable;
  Bulk bulk;
  const char* final_delta = "auto";  // SourceOptions::final_delta; auto = write where RC has it
  std::uint32_t lanes = 1;
  bool ends_on_rc() const { return reliable == Reliable::rc || reliable == Reliable::tcp_then_rc; }
  bool rdma() const { return ends_on_rc() || bulk == Bulk::ud; }
};

// The addresses the pair runs between: loopback for sockets alone, the lab's two RoCE addresses
// as soon as RDMA is involved (rxe drops what arrives on lo).
struct Ends {
  std::string a, b;
};

Ends ends_for(const Pair& p) {
  if (!p.rdma()) return {"127.0.0.1", "127.0.0.1"};
  return {env_or("HYMIG_LAB_IP_A", "10.9.0.1"), env_or("HYMIG_LAB_IP_B", "10.9.0.2")};
}

// Both ends of one session's channels, made the way the CLI makes them (runtime/ for the lanes and
// the move to RC).
harness::EngineChannels make_channels(const Pair& p, const Ends& e) {
  harness::EngineChannels c;
  // Each side's lanes and its move to RC come from one bundle, as in the product: they share the
  // RDMA device's context and PD.
  const BulkTransport kind = p.bulk == Bulk::ud ? BulkTransport::rdma_ud : BulkTransport::udp;
  const runtime::SourceBackends source = runtime::source_backends(kind, e.a, 0, kTimeout);
  const runtime::DestinationBackends destination = runtime::destination_backends(e.b);
  switch (p.reliable) {
    case Reliable::fake: {
      auto rel = make_fake_reliable_pair();
      c.source_rel = std::move(rel.a);
      c.dest_rel = std::move(rel.b);
      c.raw_source = c.source_rel.get();
      c.cut = [raw = c.raw_source] { cut_fake_reliable(*raw); };
      break;
    }
    case Reliable::tcp:
    case Reliable::tcp_then_rc: {
      TcpListener listener = TcpListener::listen(e.b + ":0");
      auto accepted = std::async(std::launch::async, [&] { return listener.accept(kTimeout); });
      c.source_rel = connect_tcp(listener.local_address(), kTimeout, e.a);
      c.dest_rel = accepted.get();
      if (p.reliable == Reliable::tcp_then_rc) {
        c.connect_reliable = source.connect_rc;
        c.dest_reliable = destination.rc_acceptors;
      }
      break;
    }
    case Reliable::rc: {
#ifdef HYMIG_HAVE_VERBS
      auto listener = verbs::RcListener::open(e.b);
      auto accepted = std::async(std::launch::async, [&] { return listener->accept(kTimeout); });
      c.source_rel = verbs::connect_rc(e.a, listener->endpoint(), kTimeout);
      c.dest_rel = accepted.get();
#endif
      break;
    }
  }
  switch (p.bulk) {
    case Bulk::fake: {
      auto pair = std::make_shared<FakeDatagramPair>(make_fake_datagram_pair({}));
      c.source_dgram = [pair]() -> std::unique_ptr<DatagramChannel> { return std::move(pair->a); };
      c.dest_dgram = [pair](const Notify&) -> std::unique_ptr<DatagramChannel> { return std::move(pair->b); };
      break;
    }
    case Bulk::udp:
    case Bulk::ud:
      c.source_dgram = source.datagrams;
      c.dest_dgram = destination.datagrams;
      break;
    case Bulk::over_reliable:
      break;
  }
  return c;
}

class EngineOverEveryTransport : public ::testing::TestWithParam<Pair> {};

TEST_P(EngineOverEveryTransport, DestinationEqualsPausedSourceByteForByte) {
  const Pair p = GetParam();
  const Ends e = ends_for(p);
#ifdef HYMIG_HAVE_VERBS
  if (p.rdma() && (!verbs::find_roce_port(e.a) || !verbs::find_roce_port(e.b)))
    GTEST_SKIP() << "no active RoCE ports for " << e.a << " and " << e.b
                 << " (needs rdma_rxe: runs in the Soft-RoCE lab, ctest -L lab)";
#else
  if (p.rdma()) GTEST_SKIP() << "built without rdma-core (HYMIG_WITH_VERBS=OFF): no RDMA pairs";
#endif

  harness::EngineChannels c = make_channels(p, e);
  SyntheticSpec spec;
  spec.size = 8 << 20;
  spec.dirty_rate = 4 << 20;
  spec.working_set = 2 << 20;
  spec.seed = 11;
  spec.zero_fraction = 0.2;
  SyntheticImage image(spec);

  harness::TargetRecord target;
  SourceOptions opts;
  opts.bulk = p.bulk == Bulk::over_reliable ? BulkTransport::tcp : BulkTransport::udp;
  opts.initial_rate = 16 << 20;
  opts.downtime_ms = 100;
  opts.max_rounds = 6;
  opts.peer_timeout = kTimeout;
  opts.final_delta = cli::final_delta_option(p.final_delta, nullptr);
  opts.lanes = p.lanes;
  if (p.reliable == Reliable::tcp_then_rc) opts.reliable = ReliableTransport::rdma_rc;
  harness::EngineRun run = harness::run_engines(std::move(c), image, harness::kept_targets(target), opts);
  const MigrationReport& src = run.source;
  const DestinationReport& dest = run.dest;

  ASSERT_TRUE(src.committed()) << src.error << " / destination: " << dest.error;
  EXPECT_TRUE(src.verified);
  EXPECT_TRUE(dest.committed);
  const char* bulk_name = p.bulk == Bulk::over_reliable ? "tcp" : p.bulk == Bulk::ud ? "ud" : p.bulk == Bulk::udp ? "udp" : "fake";
  EXPECT_EQ(src.bulk_transport, bulk_name);
  EXPECT_EQ(src.lanes, p.bulk == Bulk::over_reliable ? 0u : p.lanes);
  EXPECT_EQ(src.reliable_transport, p.ends_on_rc() ? "rc" : p.reliable == Reliable::tcp ? "tcp" : "fake");
  // Over RC the final delta goes by RDMA WRITE into the registered target unless asked to send.
  const bool by_write = p.ends_on_rc() && std::string(p.final_delta) != "send" &&
                        (std::string(p.final_delta) == "write" || kDefaultFinalDelta == FinalDeltaMethod::write);
  EXPECT_EQ(src.final_delta_method, by_write ? "write" : "send") << src.final_delta_note;
  // Pages the final datagram rounds (taken when the lab link lost datagrams) delivered are not written.
  EXPECT_EQ(dest.final_delta, by_write && src.final_reliable_pages > 0 ? "write" : "send");
  ASSERT_EQ(target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(target.memory.data(), image.memory().data(), image.memory().size()));
}

INSTANTIATE_TEST_SUITE_P(
    Pairs, EngineOverEveryTransport,
    ::testing::Values(Pair{"fake", Reliable::fake, Bulk::fake}, Pair{"udp_tcp", Reliable::tcp, Bulk::udp},
                      Pair{"tcp_only", Reliable::tcp, Bulk::over_reliable}, Pair{"ud_rc", Reliable::rc, Bulk::ud},
                      Pair{"ud_tcp", Reliable::tcp, Bulk::ud}, Pair{"rc_only", Reliable::rc, Bulk::over_reliable},
                      Pair{"ud_rc_send", Reliable::rc, Bulk::ud, "send"},
                      Pair{"rc_only_send", Reliable::rc, Bulk::over_reliable, "send"},
                      Pair{"ud_rc_write", Reliable::rc, Bulk::ud, "write"},
                      Pair{"udp_tcp_2lanes", Reliable::tcp, Bulk::udp, "auto", 2},
                      Pair{"ud_rc_2lanes", Reliable::rc, Bulk::ud, "auto", 2},
                      // As `hymig migrate --reliable rc` does it: TCP first, RC after ready.
                      Pair{"ud_tcp_then_rc", Reliable::tcp_then_rc, Bulk::ud},
                      Pair{"udp_tcp_then_rc", Reliable::tcp_then_rc, Bulk::udp}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hymig
