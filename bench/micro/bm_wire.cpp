// The datagram codec, per datagram, for the layouts the engine uses: whole pages (jumbo 8972 B and
// the 65507 B loopback/GSO maximum) and a page cut into chunks (1472 B for a 1500 B MTU, 1024 B
// for a RoCE MTU of 1024). Bytes are each datagram's payload.
//
// Whole-page datagrams gather their payload straight from the image and their check covers only
// header and entries (the per-page hashes cover the pages), so encode/decode cost there does not
// grow with the payload; hashing those pages is measured in bm_hash. Chunked datagrams hash their
// chunk for the check, so there the codec does touch every payload byte.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "bench/micro/buffers.hpp"
#include "transport/page_hash.hpp"
#include "transport/wire.hpp"

namespace hymig::micro {
namespace {

constexpr std::uint64_t kSession = 0x1234'5678'9ABC'DEF0;
// The pages payloads come from: 1 MiB of the region, warm in cache as it is right after the
// sender hashed the page.
constexpr std::size_t kWindowPages = 256;

std::uint64_t page_count() { return region().size() / kPage; }

std::string describe(const DatagramLayout& l) {
  if (l.chunked())
    return std::to_string(l.chunk_count) + " chunks of " + std::to_string(l.chunk_bytes) + " B";
  return std::to_string(l.pages_per_datagram) + " pages";
}

// One datagram as the sender describes it: header fields, entries, and the payload it gathers.
struct Planned {
  DatagramHeader header;
  std::vector<DatagramEntry> entries;
  std::span<const std::byte> chunk;  // chunked mode: the chunk (covered by the check)
  std::size_t payload = 0;
};

// The datagrams that carry pages [0, kWindowPages) in this layout, in sending order.
std::vector<Planned> plan(const DatagramLayout& l) {
  const std::byte* image = region().data();
  std::vector<Planned> out;
  std::uint64_t seq = 0;
  if (!l.chunked()) {
    for (std::uint64_t first = 0; first + l.pages_per_datagram <= kWindowPages; first += l.pages_per_datagram) {
      Planned d;
      for (std::uint64_t p = first; p < first + l.pages_per_datagram; ++p)
        d.entries.push_back({p, false, hash_page(image + p * kPage, kPage)});
      d.payload = std::size_t{l.pages_per_datagram} * kPage;
      d.header = {static_cast<std::uint16_t>(d.entries.size()), kSession, seq++, 0, 0, 0, 1,
                  static_cast<std::uint32_t>(d.payload)};
      out.push_back(std::move(d));
    }
    return out;
  }
  for (std::uint64_t p = 0; p < kWindowPages; ++p) {
    const std::uint64_t h = hash_page(image + p * kPage, kPage);
    for (std::uint16_t c = 0; c < l.chunk_count; ++c) {
      Planned d;
      d.entries.push_back({p, false, h});
      d.payload = l.chunk_len(c);
      d.chunk = {image + p * kPage + std::size_t{c} * l.chunk_bytes, d.payload};
      d.header = {1, kSession, seq++, 0, 0, c, l.chunk_count, static_cast<std::uint32_t>(d.payload)};
      out.push_back(std::move(d));
    }
  }
  return out;
}

void BM_datagram_encode(benchmark::State& state) {
  const DatagramLayout layout = make_layout(kPage, static_cast<std::size_t>(state.range(0)));
  std::vector<Planned> planned = plan(layout);
  std::vector<std::byte> head(kDatagramHeaderBytes + kMaxEntries * kEntryBytes);
  std::size_t i = 0, payload = 0;
  for (auto _ : state) {
    Planned& d = planned[i];
    d.header.send_time_ns += 1;  // the sender stamps every datagram; keep the header changing
    benchmark::DoNotOptimize(encode_datagram_head(head.data(), d.header, d.entries, d.chunk));
    benchmark::ClobberMemory();
    payload += d.payload;
    if (++i == planned.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(payload));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(describe(layout));
}

void BM_datagram_decode(benchmark::State& state) {
  const DatagramLayout layout = make_layout(kPage, static_cast<std::size_t>(state.range(0)));
  // Received datagrams are contiguous (head, entries, payload), as the receive ring hands them out.
  std::vector<std::vector<std::byte>> datagrams;
  for (const Planned& d : plan(layout)) {
    std::vector<std::byte> bytes(kDatagramHeaderBytes + d.entries.size() * kEntryBytes + d.payload);
    const std::size_t head = encode_datagram_head(bytes.data(), d.header, d.entries, d.chunk);
    if (layout.chunked()) {
      std::memcpy(bytes.data() + head, d.chunk.data(), d.chunk.size());
    } else {
      for (std::size_t k = 0; k < d.entries.size(); ++k)
        std::memcpy(bytes.data() + head + k * kPage, region().data() + d.entries[k].page * kPage, kPage);
    }
    datagrams.push_back(std::move(bytes));
  }
  DatagramView view;
  for (const auto& d : datagrams)
    if (decode_datagram(d, kSession, page_count(), layout, view) != DropReason::none) {
      state.SkipWithError("a datagram the encoder made does not decode");
      return;
    }
  std::size_t i = 0, payload = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decode_datagram(datagrams[i], kSession, page_count(), layout, view));
    benchmark::DoNotOptimize(view);
    payload += view.payload.size();
    if (++i == datagrams.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(payload));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(describe(layout));
}

// 1024: RoCE MTU 1024; 1472: Ethernet MTU 1500 minus IPv4 and UDP headers (both chunked);
// 8972: jumbo MTU 9000 (2 whole pages); 65507: the UDP maximum, used on loopback (15 whole pages).
BENCHMARK(BM_datagram_encode)->ArgName("datagram_bytes")->Arg(1024)->Arg(1472)->Arg(8972)->Arg(65507);
BENCHMARK(BM_datagram_decode)->ArgName("datagram_bytes")->Arg(1024)->Arg(1472)->Arg(8972)->Arg(65507);

}  // namespace
}  // namespace hymig::micro
