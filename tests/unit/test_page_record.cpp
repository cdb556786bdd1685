// Page records (protocol 4, protocol/page_record.hpp): on a chunked path a raw page is one AEAD
// record over its chunk datagrams. The destination must land a page only once its whole record
// verified, in whatever order its chunks came (and with the next page's overtaking them); lose it
// (as if a chunk were lost) when a chunk is missing, forged or altered; never let unauthenticated
// bytes over a page that holds an authentic copy; and count the record's datagrams only once
// authentic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/page_applier.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/page_record.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"

using namespace hymig;

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kSession = 77;

using Chunks = std::vector<std::vector<std::byte>>;

class PageRecord : public ::testing::TestWithParam<DatagramProtection> {
 protected:
  DatagramLayout layout = make_layout(kPage, 1472);
  SessionSecrets secrets = SessionSecrets::random_for_testing();
  EpochKeys sealer{secrets, "datagram/0", Role::source, AeadCipher::Direction::seal};
  std::vector<std::byte> image = std::vector<std::byte>(kPage * 8, std::byte{0x11});
  PageApplier applier{image, kPage, kSession, layout, GetParam(), secrets, 1, /*keep_hashes=*/true};

  static std::vector<std::byte> filled(std::byte b) { return std::vector<std::byte>(kPage, b); }

  // The record of `page_index` holding `bytes`, sealed as the streamer seals it.
  Chunks record(std::uint64_t page_index, const std::vector<std::byte>& bytes, std::uint32_t round, std::uint64_t seq,
                EpochKeys* keys = nullptr) {
    DatagramHeader first;
    first.session = kSession;
    first.seq = seq;
    first.send_time_ns = 1000 + seq;
    first.round = round;
    return seal_page_record_datagrams((keys ? *keys : sealer).for_seq(seq), GetParam(), layout, first,
                                      {page_index, false, hash_page(bytes.data(), kPage)}, bytes.data());
  }

  DropReason deliver(const std::vector<std::byte>& d) { return applier.apply_datagram(0, d, 5000); }

  bool holds(std::uint64_t p, std::byte b) const {
    return std::all_of(image.begin() + p * kPage, image.begin() + (p + 1) * kPage, [&](std::byte x) { return x == b; });
  }
};

TEST_P(PageRecord, LandsOnlyOnceTheWholeRecordVerified) {
  ASSERT_TRUE(layout.chunked());
  ASSERT_GT(layout.chunk_padding(layout.chunk_count - 1), 0u)
      << "the last chunk must be padded for this to mean anything";
  const Chunks c = record(2, filled(std::byte{0x5a}), 0, 0);
  for (const auto& d : c) EXPECT_EQ(d.size(), c[0].size()) << "every chunk datagram has one size (GSO runs)";
  for (std::size_t i = 0; i + 1 < c.size(); ++i) {
    ASSERT_EQ(deliver(c[i]), DropReason::none) << i;
    EXPECT_FALSE(applier.present().test(2));
    EXPECT_EQ(applier.datagrams(), 0u) << "nothing counts as authentic before the tag verified";
  }
  ASSERT_EQ(deliver(c.back()), DropReason::none);
  EXPECT_TRUE(applier.present().test(2));
  EXPECT_TRUE(holds(2, std::byte{0x5a}));
  EXPECT_TRUE(holds(3, std::byte{0x11})) << "the padding must not land past the page";
  EXPECT_EQ(applier.datagrams(), c.size());
  EXPECT_EQ(applier.bytes(), c.size() * c[0].size());
  EXPECT_EQ(applier.next_seq(), c.size());
  EXPECT_EQ(applier.page_hashes()[2], hash_page(image.data() + 2 * kPage, kPage));
  EXPECT_EQ(applier.invalid(), 0u);
  // The same chunks again: replays, dropped before they touch anything.
  for (const auto& d : c) EXPECT_EQ(deliver(d), DropReason::replayed);
}

TEST_P(PageRecord, ReorderedChunksAndOvertakingPagesStillLand) {
  // Chunks in reverse order, and the next page's record overtaking this one's first chunk.
  const Chunks a = record(2, filled(std::byte{0x5a}), 0, 0);
  const Chunks b = record(3, filled(std::byte{0x5c}), 0, 10);
  for (std::size_t i = a.size() - 1; i > 0; --i) ASSERT_EQ(deliver(a[i]), DropReason::none) << i;
  for (const auto& d : b) ASSERT_EQ(deliver(d), DropReason::none);
  EXPECT_TRUE(applier.present().test(3));
  EXPECT_FALSE(applier.present().test(2));
  ASSERT_EQ(deliver(a[0]), DropReason::none);
  EXPECT_TRUE(applier.present().test(2));
  EXPECT_TRUE(holds(2, std::byte{0x5a}));
  EXPECT_TRUE(holds(3, std::byte{0x5c}));
  EXPECT_EQ(applier.datagrams(), a.size() + b.size());
}

// Receive batches: a record whose chunks all come in one batch opens from the batch's bytes; one
// split over batches keeps what came in the first, because the channel reuses a batch's memory
// at the next receive (here: scribbled over once applied).
TEST_P(PageRecord, ARecordSplitOverReceiveBatchesLandsFromWhatItKept) {
  const Chunks a = record(2, filled(std::byte{0x5a}), 0, 0);
  const Chunks b = record(3, filled(std::byte{0x5c}), 0, 10);
  const auto apply = [&](std::vector<std::vector<std::byte>> batch) {
    std::vector<InDatagram> views;
    views.reserve(batch.size());
    for (const auto& d : batch) views.push_back({d});
    applier.apply_batch(0, views, 5000);
    for (auto& d : batch) std::fill(d.begin(), d.end(), std::byte{0xee});
  };
  // Batch 1: page 3's record whole, and page 2's last chunk; batch 2: page 2's other chunks.
  std::vector<std::vector<std::byte>> first(b.begin(), b.end());
  first.push_back(a.back());
  apply(first);
  EXPECT_TRUE(applier.present().test(3));
  EXPECT_FALSE(applier.present().test(2));
  apply({a.begin(), a.end() - 1});
  EXPECT_TRUE(applier.present().test(2));
  EXPECT_TRUE(holds(2, std::byte{0x5a}));
  EXPECT_TRUE(holds(3, std::byte{0x5c}));
  EXPECT_EQ(applier.datagrams(), a.size() + b.size());
  EXPECT_EQ(applier.invalid(), 0u);
}

TEST_P(PageRecord, AMissingChunkLosesThePageUntilItIsResent) {
  const Chunks first = record(0, filled(std::byte{0x50}), 0, 100);  // authentic traffic reached 102
  for (const auto& d : first) ASSERT_EQ(deliver(d), DropReason::none);
  const Chunks lost = record(2, filled(std::byte{0x5a}), 0, 0);
  for (std::size_t i = 0; i < lost.size(); ++i) {
    if (i == 1) continue;
    ASSERT_EQ(deliver(lost[i]), DropReason::none) << i;
  }
  EXPECT_FALSE(applier.present().test(2));
  // Three newer records begin and every slot is taken; a fifth gives up the record added to least
  // recently: its chunks count as broken, and (within the authentic range) as received.
  for (std::uint64_t seq : {10u, 20u, 30u})
    ASSERT_EQ(deliver(record(3, filled(std::byte{0x5c}), 0, seq)[0]), DropReason::none);
  EXPECT_EQ(applier.dropped(DropReason::broken_record), 0u);
  const Chunks e = record(4, filled(std::byte{0x5d}), 0, 40);
  for (const auto& d : e) ASSERT_EQ(deliver(d), DropReason::none);
  EXPECT_TRUE(applier.present().test(4));
  EXPECT_EQ(applier.dropped(DropReason::broken_record), lost.size() - 1);
  EXPECT_EQ(applier.datagrams(), first.size() + e.size() + lost.size() - 1);
  // Its missing chunk, arriving after that, cannot complete it: dropped before it takes a slot.
  EXPECT_EQ(deliver(lost[1]), DropReason::broken_record);
  EXPECT_FALSE(applier.present().test(2));
  // Losing chunks is the path's doing, not an attack: not counted as invalid.
  EXPECT_EQ(applier.invalid(), 0u);
  // A duplicate chunk changes nothing; the resend lands.
  const Chunks resent = record(2, filled(std::byte{0x5b}), 0, 50);
  ASSERT_EQ(deliver(resent[0]), DropReason::none);
  EXPECT_EQ(deliver(resent[0]), DropReason::broken_record);
  for (std::size_t i = 1; i < resent.size(); ++i) ASSERT_EQ(deliver(resent[i]), DropReason::none) << i;
  EXPECT_TRUE(applier.present().test(2));
  EXPECT_TRUE(holds(2, std::byte{0x5b}));
}

// The pacer reads loss from what the receiver counts: the chunks of a page whose record was given
// up did arrive (a 3-chunk page is lost at 66 % when 30 % of datagrams are). Counted once each,
// and only below the highest authentic sequence number.
TEST_P(PageRecord, AGivenUpRecordsChunksCountAsReceivedOnce) {
  std::uint64_t delivered = 0, held = 0;
  std::vector<Chunks> broken;
  for (std::uint64_t k = 0; k < 16; ++k) {
    const Chunks c = record(k % 8, filled(std::byte{0x60}), 0, 3 * k);
    const bool lose_one = k % 2 == 1;
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (lose_one && i == k % c.size()) continue;
      ASSERT_EQ(deliver(c[i]), DropReason::none) << k << "/" << i;
      ++delivered;
    }
    if (lose_one) broken.push_back(c);
  }
  held = 4 * (layout.chunk_count - 1);  // the last four broken records still wait in their slots
  EXPECT_EQ(applier.datagrams(), delivered - held);
  EXPECT_EQ(applier.dropped(DropReason::broken_record), delivered - held - 8 * layout.chunk_count);
  // A chunk of a given-up record again (a duplicate, or a forger's copy): not counted twice.
  for (std::size_t b = 0; b < 4; ++b)
    EXPECT_EQ(deliver(broken[b][(2 * b + 1 + 1) % layout.chunk_count]), DropReason::broken_record);
  EXPECT_EQ(applier.datagrams(), delivered - held);
}

// Chunks that claim records far ahead (forged, or a corrupted sequence number) take a slot each,
// but the slots go back to real records: they never block the lane.
TEST_P(PageRecord, ChunksClaimingFutureRecordsDoNotBlockTheLane) {
  for (std::uint64_t seq = 50'000; seq < 50'000 + 6 * 1000; seq += 1000) {
    std::vector<std::byte> bogus = record(6, filled(std::byte{0x44}), 0, seq)[1];
    ASSERT_EQ(deliver(bogus), DropReason::none);
  }
  for (std::uint64_t p = 0; p < 6; ++p) {
    const Chunks c = record(p, filled(std::byte{0x60}), 0, 100 + 10 * p);
    for (const auto& d : c) deliver(d);
    EXPECT_TRUE(applier.present().test(p)) << p;
  }
  // Given up, they count for nothing: they lie beyond what authentic datagrams reached.
  EXPECT_EQ(applier.datagrams(), 6u * layout.chunk_count);
}

TEST_P(PageRecord, AlteredChunksFailTheRecordAndNeverTouchAnAuthenticPage) {
  const Chunks good = record(2, filled(std::byte{0x5a}), 0, 20);
  for (const auto& d : good) ASSERT_EQ(deliver(d), DropReason::none);
  ASSERT_TRUE(holds(2, std::byte{0x5a}));
  Bitmap none(8);
  applier.begin_round(1, none);  // round 1 resends nothing: page 2's copy is current

  // A record under other keys (a forger's): every chunk but the last is taken (it cannot be
  // checked alone), the last fails, and the authentic page is untouched.
  EpochKeys forger(SessionSecrets::random_for_testing(), "datagram/0", Role::source, AeadCipher::Direction::seal);
  const Chunks forged = record(2, filled(std::byte{0x66}), 1, 40, &forger);
  for (std::size_t i = 0; i + 1 < forged.size(); ++i) deliver(forged[i]);
  EXPECT_EQ(deliver(forged.back()), DropReason::bad_mac);
  EXPECT_TRUE(applier.present().test(2));
  EXPECT_TRUE(holds(2, std::byte{0x5a}));

  // One byte flipped in a chunk's payload, in its entry field (zeros past chunk 0: refused as it
  // comes, so the record never completes), or in a header field the record derives: one bad-mac,
  // and the page does not land.
  for (const std::size_t at : {kDatagramHeaderBytes + kEntryBytes + 7, kDatagramHeaderBytes + 3, std::size_t{24}}) {
    Chunks c = record(4, filled(std::byte{0x5d}), 1, 60 + at);
    c[1][at] ^= std::byte{0x40};
    const std::uint64_t macs = applier.dropped(DropReason::bad_mac);
    for (const auto& d : c) deliver(d);
    EXPECT_EQ(applier.dropped(DropReason::bad_mac), macs + 1) << at;
    EXPECT_FALSE(applier.present().test(4)) << at;
  }
  // A non-zero tag field on a chunk that is not the last, or entry field on one that is not the
  // first: dropped before it touches the record, so the authentic chunk that follows still
  // completes it.
  Chunks c = record(5, filled(std::byte{0x5e}), 1, 200);
  std::vector<std::byte> marked = c[0];
  marked.back() = std::byte{1};
  EXPECT_EQ(deliver(marked), DropReason::bad_mac);
  ASSERT_EQ(deliver(c[0]), DropReason::none);
  marked = c[1];
  marked[kDatagramHeaderBytes + 2] = std::byte{1};
  EXPECT_EQ(deliver(marked), DropReason::bad_mac);
  for (std::size_t i = 1; i < c.size(); ++i) ASSERT_EQ(deliver(c[i]), DropReason::none) << i;
  EXPECT_TRUE(holds(5, std::byte{0x5e}));
}

TEST_P(PageRecord, ARecordOfAnOlderRoundNeverOverwritesANewerCopy) {
  Bitmap two(8);
  two.set(2);
  applier.begin_round(1, two);
  for (const auto& d : record(2, filled(std::byte{0x5a}), 1, 100)) ASSERT_EQ(deliver(d), DropReason::none);
  const Chunks old = record(2, filled(std::byte{0x33}), 0, 10);  // reordered: round 0's copy comes late
  for (std::size_t i = 0; i + 1 < old.size(); ++i) ASSERT_EQ(deliver(old[i]), DropReason::none);
  EXPECT_EQ(deliver(old.back()), DropReason::stale_round);
  EXPECT_TRUE(holds(2, std::byte{0x5a}));
  EXPECT_TRUE(applier.present().test(2));
}

TEST_P(PageRecord, APageWrittenByTheReliableChannelMidRecordIsLeftAlone) {
  const Chunks c = record(2, filled(std::byte{0x5a}), 0, 0);
  ASSERT_EQ(deliver(c[0]), DropReason::none);
  std::fill(image.begin() + 2 * kPage, image.begin() + 3 * kPage, std::byte{0x77});
  const std::uint64_t p = 2;
  applier.note_pages_written(std::span(&p, 1), kFinalRound);
  for (std::size_t i = 1; i + 1 < c.size(); ++i) ASSERT_EQ(deliver(c[i]), DropReason::none);
  EXPECT_EQ(deliver(c.back()), DropReason::stale_round);
  EXPECT_TRUE(holds(2, std::byte{0x77}));
  EXPECT_TRUE(applier.present().test(2));
}

TEST_P(PageRecord, OutOfRangeAndForeignPagesAreAuthenticButRefused) {
  for (const auto& d : record(9, filled(std::byte{0x5a}), 0, 0)) deliver(d);
  EXPECT_EQ(applier.dropped(DropReason::out_of_range), 1u);
  EXPECT_EQ(applier.datagrams(), 0u);
  EXPECT_TRUE(holds(7, std::byte{0x11}));
}

INSTANTIATE_TEST_SUITE_P(Protection, PageRecord, ::testing::Values(DatagramProtection::aead, DatagramProtection::mac),
                         [](const auto& info) { return info.param == DatagramProtection::aead ? "aead" : "mac"; });

// A raw chunk outside a record, or a record flag on something that is not a raw chunk of the
// layout's shape, is refused by its shape.
TEST(PageRecordShape, RawChunksTravelOnlyInRecords) {
  const DatagramLayout layout = make_layout(kPage, 1472);
  DatagramHeader h;
  h.flags = kDatagramEncrypted | kDatagramPageRecord;
  h.session = kSession;
  h.entry_count = 1;
  h.chunk_count = layout.chunk_count;
  h.payload_bytes = layout.chunk_bytes;
  auto make = [&](const DatagramHeader& hh) {
    std::vector<std::byte> d(kDatagramHeaderBytes + kEntryBytes + hh.payload_bytes + kDatagramTagBytes);
    const DatagramEntry e{1, false, 0};
    encode_datagram_head(d.data(), hh, std::span(&e, 1));
    return d;
  };
  DatagramView v;
  const auto record_bytes = make(h);
  EXPECT_EQ(decode_datagram(record_bytes, kSession, 0, layout, DatagramProtection::aead, v), DropReason::none);
  v.entries = v.sealed_entries.data();  // in clear here: the entry as check_datagram_entries sees it
  EXPECT_EQ(check_datagram_entries(v, 8, 1, layout), DropReason::none);
  DatagramHeader bare = h;
  bare.flags = kDatagramEncrypted;
  const auto bare_bytes = make(bare);
  ASSERT_EQ(decode_datagram(bare_bytes, kSession, 0, layout, DatagramProtection::aead, v), DropReason::none);
  v.entries = v.sealed_entries.data();
  EXPECT_EQ(check_datagram_entries(v, 8, 1, layout), DropReason::bad_shape) << "a raw chunk without its record";
  DatagramHeader short_chunk = h;
  short_chunk.payload_bytes = layout.chunk_len(layout.chunk_count - 1);  // unpadded
  EXPECT_EQ(decode_datagram(make(short_chunk), kSession, 0, layout, DatagramProtection::aead, v),
            DropReason::bad_shape);
  DatagramHeader whole = h;
  whole.chunk_count = 1;
  whole.payload_bytes = 0;
  EXPECT_EQ(decode_datagram(make(whole), kSession, 0, layout, DatagramProtection::aead, v), DropReason::bad_shape);
  DatagramHeader unknown = h;
  unknown.flags = kDatagramEncrypted | 4;
  EXPECT_EQ(decode_datagram(make(unknown), kSession, 0, layout, DatagramProtection::aead, v), DropReason::bad_shape);
}

}  // namespace
