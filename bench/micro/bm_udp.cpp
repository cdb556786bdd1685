// Datagram batches through the real UDP channel on loopback: a pair of UdpDatagramChannels in one
// thread, each iteration sending about 1 MiB of equal-size datagrams in batches (sendmmsg, GSO)
// and receiving all of them (recvmmsg, GRO). One core does both sides' work, so this is the
// per-byte CPU cost of the channel, not the wire rate of two cores. Bytes are the datagrams'
// bytes (the UDP payload) that arrived; a datagram lost on loopback is counted, not waited for.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <vector>

#include "bench/micro/buffers.hpp"
#include "udp/udp_datagram_channel.hpp"

namespace hymig::micro {
namespace {

using namespace std::chrono_literals;

// Datagrams are gathered like the streamer's: a 64-byte head (48-byte header + one entry) from its
// own buffer, then the payload straight from the image.
constexpr std::size_t kHeadBytes = 64;

void BM_udp_batch(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::unique_ptr<UdpDatagramChannel> tx, rx;
  try {
    tx = UdpDatagramChannel::open("127.0.0.1");
    rx = UdpDatagramChannel::open("127.0.0.1");
    tx->connect(rx->local_endpoint());
    rx->connect(tx->local_endpoint());
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (tx->max_datagram() < size) {
    state.SkipWithError("loopback path does not carry datagrams this large");
    return;
  }

  const std::size_t count = std::max<std::size_t>(1, kMiB / size);
  const std::byte* image = region().data();
  std::vector<std::byte> heads(count * kHeadBytes, std::byte{0x48});
  std::vector<std::array<ConstBuffer, 2>> parts(count);
  std::vector<OutDatagram> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    parts[i][0] = {heads.data() + i * kHeadBytes, kHeadBytes};
    parts[i][1] = {image + i * size, size - kHeadBytes};
    out[i] = {std::span<const ConstBuffer>(parts[i]), size};
  }
  std::vector<InDatagram> in(1024);

  std::uint64_t bytes = 0, datagrams = 0, lost = 0, send_full = 0;
  for (auto _ : state) {
    std::size_t sent = 0, received = 0;
    while (received < count) {
      if (sent < count) {
        const std::size_t n = tx->send_batch(std::span<const OutDatagram>(out).subspan(sent));
        sent += n;
        send_full += n == 0;
      }
      // While sending, take whatever has arrived without waiting; then wait for the rest, and
      // give up on a datagram the kernel dropped after a quiet 100 ms.
      const std::size_t n = rx->receive_batch(in, sent < count ? 0us : 100ms);
      if (n == 0 && sent == count) {
        lost += count - received;
        break;
      }
      for (std::size_t i = 0; i < n; ++i) bytes += in[i].bytes.size();
      benchmark::DoNotOptimize(in.data());
      received += n;
      datagrams += n;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(datagrams));
  state.counters["lost"] = static_cast<double>(lost);
  state.counters["send_full"] = static_cast<double>(send_full);
  state.SetLabel(std::string(tx->gso_enabled() ? "gso" : "no-gso") + (rx->gro_enabled() ? " gro" : " no-gro"));
}
// 1472: Ethernet MTU 1500; 8972: jumbo MTU 9000; 65507: the UDP maximum, what loopback allows.
BENCHMARK(BM_udp_batch)->ArgName("datagram_bytes")->Arg(1472)->Arg(8972)->Arg(65507);

}  // namespace
}  // namespace hymig::micro
