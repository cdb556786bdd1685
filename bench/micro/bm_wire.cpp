// The datagram codec, per datagram, for the layouts the engine uses: whole pages (jumbo 8972 B and
// the 65507 B loopback/GSO maximum) and a page cut into chunks (1472 B for a 1500 B MTU, 1024 B
// for a RoCE MTU of 1024). Bytes are each datagram's payload. On the chunked layouts a page's
// chunks are one record (protocol/page_record.hpp): seal works a page (its chunk_count datagrams)
// per iteration, open a chunk, the record's tag checked at each page's last.
//
// encode/decode are the header codec alone (no payload byte is touched); seal/open add what the
// wire protocol does to every byte: AES-128-GCM from the image into the send arena, and from the
// received datagram into the page (bm_aead measures the cipher on its own).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "bench/micro/buffers.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/page_record.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"

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
  std::span<const std::byte> payload_bytes;  // contiguous in the image: pages in order, or a chunk
  std::size_t payload = 0;
};

DatagramHeader header_of(std::uint16_t entries, std::uint64_t seq, std::uint16_t chunk_index, std::uint16_t chunk_count,
                         std::size_t payload) {
  DatagramHeader h;
  h.flags = kDatagramEncrypted;
  h.entry_count = entries;
  h.session = kSession;
  h.seq = seq;
  h.chunk_index = chunk_index;
  h.chunk_count = chunk_count;
  h.payload_bytes = static_cast<std::uint32_t>(payload);
  return h;
}

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
      d.payload_bytes = {image + first * kPage, d.payload};
      d.header = header_of(static_cast<std::uint16_t>(d.entries.size()), seq++, 0, 1, d.payload);
      out.push_back(std::move(d));
    }
    return out;
  }
  for (std::uint64_t p = 0; p < kWindowPages; ++p) {
    const std::uint64_t h = hash_page(image + p * kPage, kPage);
    for (std::uint16_t c = 0; c < l.chunk_count; ++c) {
      Planned d;
      d.entries.push_back({p, false, h});
      d.payload = l.chunk_bytes;  // the last chunk's padding read from the next page: a cost model only
      d.payload_bytes = {image + p * kPage + std::size_t{c} * l.chunk_bytes, d.payload};
      d.header = header_of(1, seq++, c, l.chunk_count, d.payload);
      d.header.flags |= kDatagramPageRecord;
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
    benchmark::DoNotOptimize(encode_datagram_head(head.data(), d.header, d.entries));
    benchmark::ClobberMemory();
    payload += d.payload;
    if (++i == planned.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(payload));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(describe(layout));
}

// Seals what encode_datagram_head wrote into `out` (header, entries) and `payload` behind it, as
// the streamer does: the header authenticated, entries and payload encrypted.
void seal_into(AeadCipher& c, std::uint64_t seq, std::byte* out, std::size_t head, std::span<const std::byte> payload) {
  c.begin(seq, std::span<const std::byte>(out, kDatagramHeaderBytes));
  c.crypt({out + kDatagramHeaderBytes, head - kDatagramHeaderBytes}, out + kDatagramHeaderBytes);
  c.crypt(payload, out + head);
  const AeadTag tag = c.finish_seal();
  std::memcpy(out + head + payload.size(), tag.data(), tag.size());
}

// Received datagrams as the receive ring hands them out: header, sealed entries and payload, tag.
std::vector<std::vector<std::byte>> sealed_datagrams(const DatagramLayout& layout, const SessionSecrets& secrets) {
  EpochKeys keys(secrets, "datagram/0", Role::source, AeadCipher::Direction::seal);
  std::vector<std::vector<std::byte>> out;
  if (layout.chunked()) {
    const std::byte* image = region().data();
    for (std::uint64_t p = 0; p < kWindowPages; ++p) {
      DatagramHeader first = header_of(1, p * layout.chunk_count, 0, layout.chunk_count, layout.chunk_bytes);
      for (auto& d : seal_page_record_datagrams(keys.for_seq(first.seq), DatagramProtection::aead, layout, first,
                                                {p, false, hash_page(image + p * kPage, kPage)}, image + p * kPage))
        out.push_back(std::move(d));
    }
    return out;
  }
  for (const Planned& d : plan(layout)) {
    std::vector<std::byte> bytes(kDatagramHeaderBytes + d.entries.size() * kEntryBytes + d.payload + kDatagramTagBytes);
    const std::size_t head = encode_datagram_head(bytes.data(), d.header, d.entries);
    seal_into(keys.for_seq(d.header.seq), d.header.seq, bytes.data(), head, d.payload_bytes);
    out.push_back(std::move(bytes));
  }
  return out;
}

void BM_datagram_decode(benchmark::State& state) {
  const DatagramLayout layout = make_layout(kPage, static_cast<std::size_t>(state.range(0)));
  const auto datagrams = sealed_datagrams(layout, SessionSecrets::random_for_testing());
  DatagramView view;
  for (const auto& d : datagrams)
    if (decode_datagram(d, kSession, 0, layout, DatagramProtection::aead, view) != DropReason::none) {
      state.SkipWithError("a datagram the encoder made does not decode");
      return;
    }
  std::size_t i = 0, payload = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decode_datagram(datagrams[i], kSession, 0, layout, DatagramProtection::aead, view));
    benchmark::DoNotOptimize(view);
    payload += view.payload.size();
    if (++i == datagrams.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(payload));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(describe(layout));
}

// What the sender does per datagram: head, then the payload encrypted from the image into the arena.
void BM_datagram_seal(benchmark::State& state) {
  const DatagramLayout layout = make_layout(kPage, static_cast<std::size_t>(state.range(0)));
  std::vector<Planned> planned = plan(layout);
  EpochKeys keys(SessionSecrets::random_for_testing(), "datagram/0", Role::source, AeadCipher::Direction::seal);
  std::vector<std::byte> arena(kDatagramHeaderBytes + kMaxEntries * kEntryBytes + layout.datagram_bytes + kDatagramTagBytes);
  // Chunked: the page is copied into a record body and sealed there, its chunks' heads apart. The
  // copy is the streamer's one copy of the page out of the image; the whole-page path below seals
  // straight from the image, so it leaves that copy out.
  std::vector<std::byte> body(page_record_body_bytes(layout));
  std::vector<std::byte> heads(std::size_t{layout.chunk_count} * kPageRecordHeadBytes);
  std::vector<std::byte*> at;
  for (std::uint16_t c = 0; c < layout.chunk_count; ++c) at.push_back(heads.data() + c * kPageRecordHeadBytes);
  std::size_t i = 0, payload = 0, datagrams = 0;
  std::uint64_t seq = 0;
  for (auto _ : state) {
    Planned& d = planned[i];
    if (layout.chunked()) {  // planned[i] is the page's chunk 0
      DatagramHeader first = d.header;
      first.seq = seq;
      seq += layout.chunk_count;
      std::memcpy(body.data() + kPageRecordPageAt, d.payload_bytes.data(), kPage);
      seal_page_record(keys.for_seq(first.seq), DatagramProtection::aead, layout, first, d.entries[0], body.data(), at);
      benchmark::ClobberMemory();
      payload += std::size_t{layout.chunk_count} * layout.chunk_bytes;
      datagrams += layout.chunk_count;
      i += layout.chunk_count;
      if (i >= planned.size()) i = 0;
      continue;
    }
    d.header.seq = seq++;
    const std::size_t head = encode_datagram_head(arena.data(), d.header, d.entries);
    seal_into(keys.for_seq(d.header.seq), d.header.seq, arena.data(), head, d.payload_bytes);
    benchmark::ClobberMemory();
    payload += d.payload;
    ++datagrams;
    if (++i == planned.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(payload));
  state.SetItemsProcessed(static_cast<std::int64_t>(datagrams));
  state.SetLabel(describe(layout));
}

// What the receiver does per datagram: decode, then the payload authenticated and decrypted into
// its place (a page-sized landing area here).
void BM_datagram_open(benchmark::State& state) {
  const DatagramLayout layout = make_layout(kPage, static_cast<std::size_t>(state.range(0)));
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  const auto datagrams = sealed_datagrams(layout, secrets);
  EpochKeys keys(secrets, "datagram/0", Role::source, AeadCipher::Direction::open);
  std::vector<std::byte> landing(std::max<std::size_t>(layout.datagram_bytes, kPage));
  std::array<std::byte, kMaxEntries * kEntryBytes> entries;
  std::array<std::byte, kPage> padding;
  DatagramView view;
  AeadCipher* record = nullptr;  // chunked: the record of the page whose chunks come
  std::size_t i = 0, payload = 0;
  for (auto _ : state) {
    bool ok = decode_datagram(datagrams[i], kSession, 0, layout, DatagramProtection::aead, view) == DropReason::none;
    if (ok && layout.chunked()) {
      const std::uint16_t index = view.header.chunk_index;
      if (index == 0) {
        record = &keys.for_seq(view.header.seq);
        record->begin(view.header.seq, view.head);
      }
      if (index == 0) {  // the entry travels once, in chunk 0
        record->crypt(view.sealed_entries, entries.data());
        view.entries = entries.data();
        ok = check_datagram_entries(view, page_count(), 1, layout) == DropReason::none;
      }
      const std::size_t len = layout.chunk_len(index);
      record->crypt(view.payload.first(len), landing.data() + std::size_t{index} * layout.chunk_bytes);
      record->crypt(view.payload.subspan(len), padding.data());
      if (index + 1 == layout.chunk_count)
        ok = record->finish_open(std::span<const std::byte, kDatagramTagBytes>(view.tag, kDatagramTagBytes)) && ok;
    } else if (ok) {
      AeadCipher& c = keys.for_seq(view.header.seq);
      c.begin(view.header.seq, view.head);
      c.crypt(view.sealed_entries, entries.data());
      view.entries = entries.data();
      ok = check_datagram_entries(view, page_count(), 1, layout) == DropReason::none;
      c.crypt(view.payload, landing.data());
      ok = c.finish_open(std::span<const std::byte, kDatagramTagBytes>(view.tag, kDatagramTagBytes)) && ok;
    }
    if (!ok) {
      state.SkipWithError("a sealed datagram did not open");
      return;
    }
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
BENCHMARK(BM_datagram_seal)->ArgName("datagram_bytes")->Arg(1024)->Arg(1472)->Arg(8972)->Arg(65507);
BENCHMARK(BM_datagram_open)->ArgName("datagram_bytes")->Arg(1024)->Arg(1472)->Arg(8972)->Arg(65507);

}  // namespace
}  // namespace hymig::micro
