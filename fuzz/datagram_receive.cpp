// The destination's datagram path past authentication: the input is a session's shape and a run
// of operations — datagrams, round announcements, cut-offs, pages written by the reliable channel.
// A datagram whose header decodes is sealed here with the session's own keys before the receiver
// (PageApplier) sees it, so the fuzzer reaches everything behind the tag check: the entries it
// chose, chunks, padding, zero and compressed pages, rounds. Page records (raw chunks, one record
// per page) are sealed whole as the streamer seals them, then delivered in whatever subset and
// order the input picks, some chunks altered. Authentic is not correct: whatever
// the datagrams say, every write stays inside the image (ASan), nothing throws, and the
// bookkeeping keeps its promises (checked at the end).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/bitmap.hpp"
#include "engine/page_applier.hpp"
#include "fuzz/decoder_table.hpp"
#include "protocol/page_record.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"

using namespace hymig;

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kSession = 77;

// Fixed secrets: the same input must run the same way (libFuzzer replays inputs).
SessionSecrets fixed_secrets() {
  SessionSecrets s;
  for (std::size_t i = 0; i < s.exporter.size(); ++i) s.exporter[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return s;
}

// One sealer per lane for the whole run: deriving keys per datagram would be most of the cost.
EpochKeys& sealer(const SessionSecrets& secrets, std::uint32_t lane) {
  static std::vector<EpochKeys> sealers = [&] {
    std::vector<EpochKeys> v;
    for (std::uint32_t l = 0; l < 3; ++l)
      v.emplace_back(secrets, "datagram/" + std::to_string(l), Role::source, AeadCipher::Direction::seal);
    return v;
  }();
  return sealers.at(lane);
}

// Seals `d` (header, entries and payload in clear, room for the tag at its end) as the source's
// streamer would for `lane`.
void seal(std::vector<std::byte>& d, const SessionSecrets& secrets, std::uint32_t lane, std::uint64_t seq,
          DatagramProtection protection) {
  AeadCipher& c = sealer(secrets, lane).for_seq(seq);
  c.begin(seq, std::span<const std::byte>(d.data(), kDatagramHeaderBytes));
  const std::span<std::byte> body(d.data() + kDatagramHeaderBytes, d.size() - kDatagramHeaderBytes - kDatagramTagBytes);
  if (protection == DatagramProtection::aead) c.crypt(body, body.data());
  else c.authenticate(body);
  const AeadTag tag = c.finish_seal();
  std::memcpy(d.data() + d.size() - kDatagramTagBytes, tag.data(), tag.size());
}

Bitmap pages_from(FuzzedDataProvider& in, std::uint64_t page_count) {
  Bitmap b(page_count);
  const auto first = in.ConsumeIntegralInRange<std::uint64_t>(0, page_count - 1);
  const auto n = in.ConsumeIntegralInRange<std::uint64_t>(0, page_count - first);
  for (std::uint64_t p = first; p < first + n; ++p) b.set(p);
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const SessionSecrets secrets = fixed_secrets();
  FuzzedDataProvider in(data, size);
  static const std::size_t sizes[] = {65507, 9000, 1472, 1024};
  const DatagramLayout layout = make_layout(kPage, sizes[in.ConsumeIntegralInRange<unsigned>(0, 3)]);
  const auto protection = in.ConsumeBool() ? DatagramProtection::mac : DatagramProtection::aead;
  const bool compressed = in.ConsumeBool();
  const bool keep_hashes = in.ConsumeBool();
  const bool starts_zeroed = in.ConsumeBool();
  const std::uint32_t lanes = in.ConsumeIntegralInRange<std::uint32_t>(1, 3);
  const std::uint64_t page_count = in.ConsumeIntegralInRange<std::uint64_t>(1, 3 * kLaneBlockPages + 5);

  std::vector<std::byte> image(page_count * kPage);
  PageApplier applier(image, kPage, kSession, layout, protection, secrets, lanes, keep_hashes, starts_zeroed, compressed);
  std::uint64_t now = 1;

  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0:
      case 1: {  // a datagram: sealed when its header decodes, else as it came
        const std::uint32_t lane = in.ConsumeIntegralInRange<std::uint32_t>(0, lanes - 1);
        std::vector<std::byte> d = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, layout.datagram_bytes));
        DatagramView v;
        if (decode_datagram(d, kSession, lane, layout, protection, v) == DropReason::none)
          seal(d, secrets, lane, v.header.seq, protection);
        const DropReason r = applier.apply_datagram(lane, d, now += 1000);
        FUZZ_CHECK(r < DropReason::count_);
        break;
      }
      case 2: {  // round-begin
        const Bitmap pages = pages_from(in, page_count);
        applier.begin_round(in.ConsumeIntegralInRange<std::uint32_t>(0, 6), pages);
        break;
      }
      case 3:  // paused: older rounds no longer count
        applier.cut_off_rounds(in.ConsumeIntegralInRange<std::uint32_t>(0, 6));
        break;
      case 4: {  // final-delta pages written by the reliable channel
        const Bitmap pages = pages_from(in, page_count);
        std::vector<std::uint64_t> list;
        pages.for_each_set([&](std::uint64_t p) { list.push_back(p); });
        applier.note_pages_written(list, kFinalRound);
        break;
      }
      case 5: {  // a page record (chunked layouts): sealed whole, delivered as the input says
        if (!layout.chunked()) break;
        const std::uint32_t lane = in.ConsumeIntegralInRange<std::uint32_t>(0, lanes - 1);
        DatagramHeader first;
        first.session = kSession;
        first.lane = lane;
        first.seq = in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 20);
        first.send_time_ns = now;
        first.round = in.ConsumeIntegralInRange<std::uint32_t>(0, 6);
        DatagramEntry entry{in.ConsumeIntegralInRange<std::uint64_t>(0, page_count + 2), false, 0};
        std::vector<std::byte> page(kPage, std::byte{in.ConsumeIntegral<std::uint8_t>()});
        entry.hash = in.ConsumeBool() ? hash_page(page.data(), kPage) : in.ConsumeIntegral<std::uint64_t>();
        const std::vector<std::vector<std::byte>> chunks = seal_page_record_datagrams(
            sealer(secrets, lane).for_seq(first.seq), protection, layout, first, entry, page.data());
        // Each step delivers one chunk (the next, or any), possibly with one byte flipped, alone or
        // in a receive batch whose memory is freed once applied (a chunk kept past it is a
        // use after free).
        std::vector<std::vector<std::byte>> batch;
        const auto flush = [&] {
          std::vector<InDatagram> views;
          views.reserve(batch.size());
          for (const auto& d : batch) views.push_back({d});
          applier.apply_batch(lane, views, now += 1000);
          batch.clear();
        };
        for (std::uint16_t next = 0; next < layout.chunk_count && in.remaining_bytes() > 0;) {
          const std::uint8_t how = in.ConsumeIntegral<std::uint8_t>();
          const std::uint16_t i =
              (how & 1) ? in.ConsumeIntegralInRange<std::uint16_t>(0, layout.chunk_count - 1) : next++;
          std::vector<std::byte> d = chunks[i];
          if (how & 2) d[in.ConsumeIntegralInRange<std::size_t>(0, d.size() - 1)] ^= std::byte{0x40};
          if (how & 4) {
            batch.push_back(std::move(d));
            if (how & 8) flush();
          } else {
            FUZZ_CHECK(applier.apply_datagram(lane, d, now += 1000) < DropReason::count_);
          }
        }
        flush();
        break;
      }
    }
  }
  FUZZ_CHECK(applier.present().size() == page_count);
  if (keep_hashes) FUZZ_CHECK(applier.page_hashes().size() == page_count);
  FUZZ_CHECK(applier.written_since(0).size() == page_count);
  return 0;
}
