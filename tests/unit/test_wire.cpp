// Codecs: round trips, and every kind of bad input rejected (never a crash, never applied).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <array>
#include <random>

#include "core/error.hpp"
#include "engine/page_applier.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"

namespace hymig {
namespace {

Notify sample_notify() {
  Notify n;
  n.session = 0x1234;
  n.page_size = 4096;
  n.page_count = 256;
  n.image_bytes = 4096 * 256;
  n.image_kind = "file";
  n.image_name = "guest.ram";
  n.bulk = BulkTransport::udp;
  n.bulk_endpoints = {"127.0.0.1:4000"};
  n.datagram_bytes = 65507;
  n.verify = VerifyMode::full;
  n.protection = DatagramProtection::aead;
  return n;
}

std::vector<std::byte> text(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

TEST(WireHandshake, NotifyRoundTrips) {
  const auto n = decode_notify(encode_notify(sample_notify()));
  EXPECT_EQ(n.session, 0x1234u);
  EXPECT_EQ(n.image_name, "guest.ram");
  EXPECT_EQ(n.bulk_endpoints, std::vector<std::string>{"127.0.0.1:4000"});
  EXPECT_TRUE(n.vm_definition.empty());
}

TEST(WireHandshake, NotifyCarriesAVmDefinition) {
  auto s = sample_notify();
  s.image_kind = "vm";
  s.vm_definition = R"({"libvirt_xml":"<domain/>","persistent":true})";
  EXPECT_EQ(decode_notify(encode_notify(s)).vm_definition, s.vm_definition);
  s.image_kind = "file";  // only a VM carries one
  EXPECT_THROW(decode_notify(encode_notify(s)), Error);
  s.image_kind = "vm";
  s.vm_definition.assign(300u << 10, 'x');
  EXPECT_THROW(decode_notify(encode_notify(s)), Error);
}

TEST(WireHandshake, NotifyRejectsBadFields) {
  auto bad = [](auto mutate) {
    auto j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(encode_notify(sample_notify()).data()),
                                               encode_notify(sample_notify()).size()));
    mutate(j);
    const auto s = j.dump();
    EXPECT_THROW(decode_notify(text(s)), Error) << s;
  };
  bad([](auto& j) { j["page_size"] = 3000; });
  bad([](auto& j) { j["page_count"] = 0; });
  bad([](auto& j) { j["image_bytes"] = 12345; });
  bad([](auto& j) { j["image_name"] = "../etc/passwd"; });
  bad([](auto& j) { j["image_name"] = ".hidden"; });
  bad([](auto& j) { j["image_name"] = std::string(kMaxImageNameBytes + 1, 'a'); });
  bad([](auto& j) { j["image_name"] = "a b"; });
  bad([](auto& j) { j["image_name"] = "caf\u00e9"; });
  bad([](auto& j) { j["datagram_protection"] = "none"; });
  bad([](auto& j) { j["lanes"] = 0; });
  bad([](auto& j) { j["lanes"] = 17; });
  bad([](auto& j) { j["bulk_endpoints"] = nlohmann::json::array({"127.0.0.1:4000", "127.0.0.1:4001"}); });  // 2 for 1 lane
  bad([](auto& j) { j["bulk_endpoints"] = "127.0.0.1:4000"; });
  bad([](auto& j) { j["bulk_endpoints"] = nlohmann::json::array({42}); });
  bad([](auto& j) { j.erase("datagram_protection"); });
  bad([](auto& j) { j["image_kind"] = "disk"; });
  bad([](auto& j) { j["bulk"] = "carrier-pigeon"; });
  bad([](auto& j) { j["bulk"] = "fake"; });  // the test double's report name is no wire kind
  bad([](auto& j) { j["session"] = -1; });
  bad([](auto& j) { j["datagram_bytes"] = 10; });
  bad([](auto& j) { j.erase("verify"); });
  bad([](auto& j) { j["vm_definition"] = 42; });
  EXPECT_THROW(decode_notify(text("{not json")), Error);
  EXPECT_THROW(decode_notify(text("[1,2]")), Error);
  EXPECT_THROW(decode_notify({}), Error);
}

TEST(WireControl, BinaryMessagesRejectTruncationAndTrailingBytes) {
  Progress p{1, 2, 3, 4, -5, 6};
  auto body = encode_progress(p);
  EXPECT_EQ(decode_progress(body).min_owd_ns, -5);
  for (std::size_t cut = 0; cut < body.size(); ++cut)
    EXPECT_THROW(decode_progress(std::span(body).first(cut)), Error);
  body.push_back(std::byte{0});
  EXPECT_THROW(decode_progress(body), Error);
}

TEST(WireControl, PageSetsRoundTripBothEncodings) {
  for (double density : {0.001, 0.5, 1.0}) {
    Bitmap set(10000);
    std::mt19937 rng(7);
    for (std::uint64_t i = 0; i < set.size(); ++i)
      if (std::uniform_real_distribution<>(0, 1)(rng) < density) set.set(i);
    Bitmap back;
    EXPECT_EQ(decode_page_set(encode_page_set(3, set), 10000, back), 3u);
    ASSERT_EQ(back.count(), set.count());
    for (std::uint64_t i = 0; i < set.size(); ++i) ASSERT_EQ(back.test(i), set.test(i));
  }
}

TEST(WireControl, RoundBeginCarriesItsSetAndThePagesKnownZero) {
  Bitmap set(5000), zero(5000), none(5000);
  for (std::uint64_t i = 0; i < 5000; i += 2) set.set(i);
  for (std::uint64_t i = 0; i < 5000; i += 10) zero.set(i);
  const RoundBegin b = decode_round_begin(encode_round_begin(4, set, zero), 5000);
  EXPECT_EQ(b.round, 4u);
  EXPECT_EQ(b.pages.count(), set.count());
  EXPECT_TRUE(set.is_subset_of(b.pages));
  EXPECT_EQ(b.known_zero.count(), zero.count());
  EXPECT_TRUE(zero.is_subset_of(b.known_zero));
  EXPECT_EQ(decode_round_begin(encode_round_begin(1, set, none), 5000).known_zero.count(), 0u);
}

TEST(WireControl, RoundBeginThatDoesNotHoldTogetherIsRejected) {
  Bitmap set(100), zero(100);
  set.set(5);
  zero.set(6);  // known zero, but not in the round
  EXPECT_THROW(decode_round_begin(encode_round_begin(0, set, zero), 100), Error);
  zero = Bitmap(100);
  auto body = encode_round_begin(0, set, zero);
  EXPECT_THROW(decode_round_begin(body, 50), Error);  // another image's size
  for (std::size_t cut = 0; cut < body.size(); ++cut)
    EXPECT_THROW(decode_round_begin(std::span(body).first(cut), 100), Error) << cut;
  // The two sets naming different rounds.
  const auto first = encode_page_set(2, set), second = encode_page_set(3, zero);
  std::vector<std::byte> mixed(4);
  const auto len = static_cast<std::uint32_t>(first.size());
  std::memcpy(mixed.data(), &len, 4);
  mixed.insert(mixed.end(), first.begin(), first.end());
  mixed.insert(mixed.end(), second.begin(), second.end());
  EXPECT_THROW(decode_round_begin(mixed, 100), Error);
  // A first set's length past the body.
  std::vector<std::byte> long_first = body;
  const std::uint32_t huge = 1u << 30;
  std::memcpy(long_first.data(), &huge, 4);
  EXPECT_THROW(decode_round_begin(long_first, 100), Error);
}

TEST(WireControl, PageSetOutOfRangeIsRejected) {
  Bitmap set(100);
  set.set(99);
  Bitmap back;
  EXPECT_THROW(decode_page_set(encode_page_set(0, set), 50, back), Error);  // wrong page count
  std::vector<std::uint64_t> pages;
  const std::uint64_t idx[] = {5, 500};
  EXPECT_THROW(decode_pages_header(encode_pages_header(1, idx), 100, pages), Error);
  EXPECT_EQ(decode_pages_header(encode_pages_header(1, std::span(idx).first(1)), 100, pages), 1u);
}

// Makes datagrams as the streamer does, sealed with its own session's keys.
struct DatagramMaker {
  static constexpr std::size_t kPage = 4096;
  std::vector<std::byte> page = std::vector<std::byte>(kPage, std::byte{0x5a});
  DatagramLayout layout = make_layout(kPage, 65507);
  SessionSecrets secrets = SessionSecrets::random_for_testing();
  EpochKeys sealer{secrets, "datagram/0", Role::source, AeadCipher::Direction::seal};
  std::uint64_t next_seq = 0;

  PageApplier applier_for(std::vector<std::byte>& image, bool keep_hashes = true, bool starts_zeroed = false) {
    return PageApplier(image, kPage, 77, layout, DatagramProtection::aead, secrets, 1, keep_hashes, starts_zeroed);
  }

  // A sealed datagram of `entries` (their pages' bytes from `page`), as the streamer makes it.
  std::vector<std::byte> seal(std::uint64_t session, std::vector<DatagramEntry> entries, std::uint32_t round,
                              std::uint64_t seq) {
    DatagramHeader h;
    h.flags = kDatagramEncrypted;
    h.session = session;
    h.round = round;
    h.seq = seq;
    std::size_t payload = 0;
    for (const auto& e : entries) payload += e.zero ? 0 : kPage;
    h.payload_bytes = static_cast<std::uint32_t>(payload);
    std::vector<std::byte> out(kDatagramHeaderBytes + entries.size() * kEntryBytes + payload + kDatagramTagBytes);
    const auto head = encode_datagram_head(out.data(), h, entries);
    AeadCipher& c = sealer.for_seq(seq);
    c.begin(seq, std::span(out).first(kDatagramHeaderBytes));
    c.crypt(std::span(out).subspan(kDatagramHeaderBytes, head - kDatagramHeaderBytes), out.data() + kDatagramHeaderBytes);
    std::size_t at = head;
    for (const auto& e : entries) {
      if (e.zero) continue;
      c.crypt(page, out.data() + at);
      at += kPage;
    }
    const AeadTag tag = c.finish_seal();
    std::memcpy(out.data() + at, tag.data(), tag.size());
    return out;
  }

  std::vector<std::byte> build(std::uint64_t session, std::uint64_t page_index, std::uint32_t round = 0) {
    return seal(session, {{page_index, false, hash_page(page.data(), kPage)}}, round, next_seq++);
  }
  std::vector<std::byte> zero_entry(std::uint64_t page_index, std::uint32_t round) {
    return seal(77, {{page_index, true, zero_page_hash(kPage)}}, round, next_seq++);
  }
};

class WireDatagram : public ::testing::Test, public DatagramMaker {};

TEST_F(WireDatagram, LayoutFitsPagesOrChunks) {
  EXPECT_EQ(make_layout(4096, 65507).pages_per_datagram, 15);
  const auto l = make_layout(4096, 1472);
  EXPECT_TRUE(l.chunked());
  EXPECT_EQ(l.chunk_count, 3);
  EXPECT_EQ(std::size_t{l.chunk_len(0)} * 2 + l.chunk_len(2), 4096u);
  EXPECT_LE(kDatagramHeaderBytes + kEntryBytes + l.chunk_bytes + kDatagramTagBytes, 1472u);
  EXPECT_EQ(make_layout(4096, 1024).chunk_count, 5);
  EXPECT_THROW(make_layout(4096, 100), Error);
}

TEST_F(WireDatagram, EveryMutationIsDroppedAndNeverLands) {
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier = applier_for(image);
  const auto good = build(77, 3);
  // Flip every single byte, header, entry, payload and tag: each must be rejected.
  for (std::size_t i = 0; i < good.size(); i += (i < 128 || i + 32 > good.size()) ? 1 : 97) {
    auto bad = good;
    bad[i] ^= std::byte{0x40};
    EXPECT_NE(applier.apply_datagram(0, bad, 0), DropReason::none) << "byte " << i;
  }
  // A flipped payload or tag byte fails authentication.
  auto bad = good;
  bad[kDatagramHeaderBytes + kEntryBytes + 100] ^= std::byte{1};
  EXPECT_EQ(applier.apply_datagram(0, bad, 0), DropReason::bad_mac);
  bad = good;
  bad.back() ^= std::byte{1};
  EXPECT_EQ(applier.apply_datagram(0, bad, 0), DropReason::bad_mac);
  // Truncations.
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, kDatagramHeaderBytes, good.size() - 1})
    EXPECT_NE(applier.apply_datagram(0, std::span(good).first(len), 0), DropReason::none);
  // Wrong session, out-of-range page, unannounced round.
  EXPECT_EQ(applier.apply_datagram(0, build(78, 3), 0), DropReason::wrong_session);
  EXPECT_EQ(applier.apply_datagram(0, build(77, 8), 0), DropReason::out_of_range);
  EXPECT_EQ(applier.apply_datagram(0, build(77, 3, 1), 0), DropReason::future_round);
  // Nothing landed: no page is present, and no page but the one aimed at (not present: its bytes
  // are disposable until an authentic copy arrives) was touched.
  EXPECT_EQ(applier.present().count(), 0u);
  for (std::size_t i = 0; i < image.size(); ++i) {
    if (i / kPage != 3) {
      ASSERT_EQ(image[i], std::byte{0}) << i;
    }
  }
  // The good one does, once: again it is a replay.
  EXPECT_EQ(applier.apply_datagram(0, good, 0), DropReason::none);
  EXPECT_EQ(image[3 * kPage], std::byte{0x5a});
  EXPECT_TRUE(applier.present().test(3));
  EXPECT_EQ(applier.apply_datagram(0, good, 0), DropReason::replayed);
  EXPECT_EQ(applier.datagrams(), 1u);
}

// With encryption on, nothing but the header says anything: not which page, not its hash.
TEST_F(WireDatagram, EntriesAndPagesTravelEncrypted) {
  const DatagramEntry e{6, false, hash_page(page.data(), kPage)};
  const auto d = seal(77, {e}, 0, 0);
  std::array<std::byte, kEntryBytes> clear;
  std::memcpy(clear.data(), &e.page, 8);
  std::memcpy(clear.data() + 8, &e.hash, 8);
  EXPECT_NE(0, std::memcmp(d.data() + kDatagramHeaderBytes, clear.data(), clear.size()));
  const auto at = std::search(d.begin(), d.end(), page.begin(), page.begin() + 64);
  EXPECT_EQ(at, d.end()) << "page bytes in clear";
  // An authentic datagram whose entries make no sense (a sender's bug) is told from a forged one.
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier = applier_for(image);
  EXPECT_EQ(applier.apply_datagram(0, seal(77, {{9, false, 0}}, 0, 1), 0), DropReason::out_of_range);
  auto forged = seal(77, {{9, false, 0}}, 0, 2);
  forged[kDatagramHeaderBytes + 3] ^= std::byte{1};
  EXPECT_EQ(applier.apply_datagram(0, forged, 0), DropReason::bad_mac);
  EXPECT_EQ(applier.present().count(), 0u);
}

// A datagram sealed under another session's keys (the right session id, a valid shape) is forged.
TEST_F(WireDatagram, AnotherSessionsKeysAreForged) {
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier = applier_for(image);
  DatagramMaker other;
  other.page.assign(kPage, std::byte{0x66});
  EXPECT_EQ(applier.apply_datagram(0, other.build(77, 2), 0), DropReason::bad_mac);
  EXPECT_EQ(applier.dropped(DropReason::bad_mac), 1u);
  EXPECT_EQ(applier.datagrams(), 0u);
  // The page it aimed at was not present, so its bytes were disposable; it is still missing, and
  // the authentic copy (the same sequence number: a forgery takes nothing from the window) lands.
  EXPECT_FALSE(applier.present().test(2));
  next_seq = 0;
  EXPECT_EQ(applier.apply_datagram(0, build(77, 2), 0), DropReason::none);
  EXPECT_TRUE(applier.present().test(2));
  for (std::size_t i = 0; i < kPage; ++i) ASSERT_EQ(image[2 * kPage + i], std::byte{0x5a}) << i;
}

// Forged datagrams must not touch a page that holds an authentic copy: decrypting in place is only
// for bytes that are disposable anyway (page records: tests/unit/test_page_record.cpp).
TEST_F(WireDatagram, ForgeriesNeverOverwriteAuthenticBytes) {
  {
    std::vector<std::byte> image(kPage * 8);
    PageApplier applier = applier_for(image);
    ASSERT_EQ(applier.apply_datagram(0, build(77, 1), 0), DropReason::none);
    Bitmap none(8);
    applier.begin_round(1, none);  // round 1 resends nothing: page 1's copy is current
    DatagramMaker forger;
    forger.page.assign(kPage, std::byte{0x66});
    forger.next_seq = 100;  // fresh numbers: the window lets them through to the tag check
    for (std::uint32_t round : {0u, 1u})
      EXPECT_EQ(applier.apply_datagram(0, forger.build(77, 1, round), 0), DropReason::bad_mac);
    for (std::size_t i = 0; i < kPage; ++i) ASSERT_EQ(image[kPage + i], std::byte{0x5a}) << i;
    EXPECT_TRUE(applier.present().test(1));
  }
}

// With protection mac (--encrypt off) pages travel in clear but are still authenticated.
TEST_F(WireDatagram, MacOnlyAuthenticatesClearPages) {
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier(image, kPage, 77, layout, DatagramProtection::mac, secrets);
  DatagramHeader h;
  h.session = 77;
  h.payload_bytes = kPage;
  const DatagramEntry e{4, false, hash_page(page.data(), kPage)};
  std::vector<std::byte> out(kDatagramHeaderBytes + kEntryBytes + kPage + kDatagramTagBytes);
  const auto head = encode_datagram_head(out.data(), h, std::span(&e, 1));
  std::memcpy(out.data() + head, page.data(), kPage);
  AeadCipher& c = sealer.for_seq(0);
  c.begin(0, std::span(out).first(kDatagramHeaderBytes));
  c.authenticate(std::span(out).subspan(kDatagramHeaderBytes, kEntryBytes));
  c.authenticate(page);
  const AeadTag tag = c.finish_seal();
  std::memcpy(out.data() + head + kPage, tag.data(), tag.size());
  auto bad = out;
  bad[head + 7] ^= std::byte{1};
  EXPECT_EQ(applier.apply_datagram(0, bad, 0), DropReason::bad_mac);
  EXPECT_EQ(applier.apply_datagram(0, build(77, 4), 0), DropReason::bad_shape);  // encrypted, not what notify said
  EXPECT_EQ(applier.apply_datagram(0, out, 0), DropReason::none);
  EXPECT_EQ(image[4 * kPage + 7], std::byte{0x5a});
}

TEST_F(WireDatagram, OlderRoundNeverOverwritesNewer) {
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier = applier_for(image);
  Bitmap none(8);
  applier.begin_round(2, none);
  ASSERT_EQ(applier.apply_datagram(0, build(77, 1, 2), 0), DropReason::none);
  page.assign(kPage, std::byte{0x11});
  EXPECT_EQ(applier.apply_datagram(0, build(77, 1, 1), 0), DropReason::stale_round);
  EXPECT_EQ(image[kPage], std::byte{0x5a});
}

// A zero page needs no write into a target that starts zeroed, unless data landed there before
// (a fresh VM RAM file stays sparse); into any other target it is written.
TEST_F(WireDatagram, ZeroPagesAreWrittenOnlyOverData) {
  // The marker bytes stand for "whatever the fresh target holds": never touched by a zero page.
  std::vector<std::byte> image(kPage * 8, std::byte{0xee});
  PageApplier zeroed = applier_for(image, true, /*starts_zeroed=*/true);
  Bitmap all(8);
  all.set_all();
  ASSERT_EQ(zeroed.apply_datagram(0, zero_entry(2, 0), 0), DropReason::none);
  EXPECT_EQ(image[2 * kPage], std::byte{0xee});
  EXPECT_TRUE(zeroed.present().test(2));
  EXPECT_EQ(zeroed.page_hashes()[2], zero_page_hash(kPage));
  // Data first, then the page became zero: it must be cleared.
  ASSERT_EQ(zeroed.apply_datagram(0, build(77, 3, 0), 0), DropReason::none);
  EXPECT_EQ(image[3 * kPage], std::byte{0x5a});
  zeroed.begin_round(1, all);
  ASSERT_EQ(zeroed.apply_datagram(0, zero_entry(3, 1), 0), DropReason::none);
  for (std::size_t i = 0; i < kPage; ++i) ASSERT_EQ(image[3 * kPage + i], std::byte{0}) << i;
  // Pages written over the reliable channel count as data too.
  std::fill(image.begin() + 4 * kPage, image.begin() + 5 * kPage, std::byte{0x77});
  const std::uint64_t four[] = {4};
  zeroed.note_pages_written(four, 1);
  zeroed.begin_round(2, all);
  ASSERT_EQ(zeroed.apply_datagram(0, zero_entry(4, 2), 0), DropReason::none);
  EXPECT_EQ(image[4 * kPage + 9], std::byte{0});

  std::vector<std::byte> other(kPage * 8, std::byte{0xee});
  PageApplier unknown = applier_for(other);
  ASSERT_EQ(unknown.apply_datagram(0, zero_entry(2, 0), 0), DropReason::none);
  for (std::size_t i = 0; i < kPage; ++i) ASSERT_EQ(other[2 * kPage + i], std::byte{0}) << i;
}

TEST_F(WireDatagram, RandomJunkNeverCrashes) {
  std::vector<std::byte> image(kPage * 8);
  PageApplier applier = applier_for(image);
  std::mt19937_64 rng(1);
  std::vector<std::byte> junk;
  for (int i = 0; i < 20000; ++i) {
    junk.resize(rng() % 2000);
    for (auto& b : junk) b = std::byte(rng());
    if (junk.size() >= 8 && i % 2) {
      std::memcpy(junk.data(), &kDatagramMagic, 4);
      junk[4] = std::byte(kProtocolVersion);
    }
    EXPECT_NE(applier.apply_datagram(0, junk, 0), DropReason::none);
  }
  EXPECT_EQ(applier.present().count(), 0u);
}

TEST(Bitmap, SetCountDrainComplement) {
  Bitmap b(130);
  b.set(0);
  b.set(64);
  b.set(129);
  EXPECT_EQ(b.count(), 3u);
  EXPECT_EQ(b.next_set(1), 64u);
  EXPECT_EQ(b.next_set(130), 130u);
  Bitmap c(130);
  c.set_complement_of(b);
  EXPECT_EQ(c.count(), 127u);
  Bitmap d(130);
  b.atomic_drain_into(d);
  EXPECT_EQ(d.count(), 3u);
  EXPECT_EQ(b.count(), 0u);
  Bitmap all(130);
  all.set_all();
  EXPECT_EQ(all.count(), 130u);
}

TEST(PageHash, DigestDependsOnEveryPageAndTheKey) {
  const SessionSecrets s = SessionSecrets::random_for_testing();
  std::vector<std::uint64_t> h(100, 1);
  const auto a = keyed_digest_of_hashes(s, h);
  EXPECT_NE(a, keyed_digest_of_hashes(SessionSecrets::random_for_testing(), h));
  h[99] = 2;
  EXPECT_NE(a, keyed_digest_of_hashes(s, h));
  std::vector<std::byte> zero(4096);
  EXPECT_EQ(hash_page(zero.data(), 4096), zero_page_hash(4096));
  EXPECT_TRUE(is_zero_page(zero.data(), 4096));
  zero[4095] = std::byte{1};
  EXPECT_FALSE(is_zero_page(zero.data(), 4096));
}

}  // namespace
}  // namespace hymig
