// The source's datagram streamer against a guest that keeps writing: whatever bytes a page's
// datagrams carry, the hash the source records for it (dirty detection, the fast digest) is the
// hash of exactly those bytes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/datagram_streamer.hpp"
#include "engine/page_applier.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/wire.hpp"
#include "testing/fake_channel.hpp"

namespace hymig {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kPages = 512;

// The guest: another process writing into the shared image until the test is done with it
// (another process, as a guest is, and so outside what a thread sanitizer of this one sees).
class DirtyingGuest {
 public:
  explicit DirtyingGuest(std::span<std::byte> image) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      std::uint64_t x = 88172645463325252ull;
      for (std::uint64_t n = 0;; ++n) {  // xorshift: a page and a word in it, a new value
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        auto* word = reinterpret_cast<volatile std::uint64_t*>(image.data() + (x % kPages) * kPage) + (x >> 32) % 512;
        *word = n;
      }
    }
  }
  ~DirtyingGuest() { stop(); }
  DirtyingGuest(const DirtyingGuest&) = delete;
  DirtyingGuest& operator=(const DirtyingGuest&) = delete;
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

struct SharedImage {
  std::span<std::byte> bytes;
  SharedImage() {
    void* p = ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    bytes = {static_cast<std::byte*>(p), kPages * kPage};
  }
  ~SharedImage() { ::munmap(bytes.data(), bytes.size()); }
  SharedImage(const SharedImage&) = delete;
  SharedImage& operator=(const SharedImage&) = delete;
};

using Case = std::tuple<std::size_t, DatagramProtection, Compression>;

class StreamerUnderWrites : public ::testing::TestWithParam<Case> {};

TEST_P(StreamerUnderWrites, RecordsTheHashOfWhatWent) {
  const auto [datagram_bytes, protection, compression] = GetParam();
  SharedImage source;
  // Half the pages compress (text-like), a sixteenth are zeros, the rest random.
  std::mt19937_64 rng(7);
  for (std::size_t p = 0; p < kPages; ++p) {
    std::byte* page = source.bytes.data() + p * kPage;
    if (p % 16 == 3) continue;
    for (std::size_t i = 0; i < kPage; ++i)
      page[i] = p % 2 ? std::byte(rng()) : std::byte("migrate "[i % 8] + (i % 512 == 0 ? rng() % 8 : 0));
  }
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  const DatagramLayout layout = make_layout(kPage, datagram_bytes);
  Impairments clean;
  clean.queue_limit = 1u << 16;
  clean.max_datagram = datagram_bytes;
  FakeDatagramPair link = make_fake_datagram_pair(clean);
  std::vector<std::uint64_t> sent_hashes(kPages, 0);
  DatagramStreamer streamer(*link.a, layout, 42, source.bytes, sent_hashes, std::chrono::milliseconds(2000), protection,
                            secrets, 0, compression);
  std::vector<std::byte> target(kPages * kPage);
  PageApplier applier(target, kPage, 42, layout, protection, secrets, 1, true, false, compression != Compression::off);
  std::array<InDatagram, 256> in;
  const auto drain = [&] {
    while (const std::size_t n = link.b->receive_batch(in, std::chrono::milliseconds(20)))
      for (std::size_t i = 0; i < n; ++i) applier.apply_datagram(0, in[i].bytes, 0);
  };

  Bitmap all(kPages);
  all.set_all();
  const Bitmap no_holes(kPages);
  {
    DirtyingGuest guest(source.bytes);
    for (std::uint32_t round = 0; round < 4; ++round) {
      applier.begin_round(round, all);
      streamer.send_round(
          round, all, no_holes, [] { return 1e12; }, drain);
      drain();
    }
  }
  EXPECT_EQ(applier.invalid(), 0u) << "bad-mac " << applier.dropped(DropReason::bad_mac) << ", bad-hash "
                                   << applier.dropped(DropReason::bad_hash);
  std::size_t wrong = 0;
  for (std::size_t p = 0; p < kPages; ++p) {
    ASSERT_TRUE(applier.present().test(p)) << "page " << p;
    wrong += hash_page(target.data() + p * kPage, kPage) != sent_hashes[p];
  }
  EXPECT_EQ(wrong, 0u) << "pages whose recorded hash is not the hash of the bytes that went";
}

INSTANTIATE_TEST_SUITE_P(Layouts, StreamerUnderWrites,
                         ::testing::Combine(::testing::Values(std::size_t{1472}, std::size_t{8972}, std::size_t{65507}),
                                            ::testing::Values(DatagramProtection::aead, DatagramProtection::mac),
                                            ::testing::Values(Compression::off, Compression::on)),
                         [](const auto& info) {
                           return "dgram" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) == DatagramProtection::aead ? "_aead" : "_mac") +
                                  (std::get<2>(info.param) == Compression::off ? "" : "_zstd");
                         });

// A link the kernel holds the sender to: every send blocks for as long as its bytes take at
// `rate` bytes/s, as a blocking socket does in front of a full tc shaper or a 1 Gbit/s device.
// The pacer is not the limit here (it is given far more), so the lane waits in the send.
class KernelHeldChannel : public DatagramChannel {
 public:
  KernelHeldChannel(DatagramChannel& inner, double rate) : inner_(inner), rate_(rate) {}
  std::string transport_name() const override { return inner_.transport_name(); }
  BulkTransport wire_kind() const override { return inner_.wire_kind(); }
  std::size_t max_datagram() const override { return inner_.max_datagram(); }
  std::string local_endpoint() const override { return inner_.local_endpoint(); }
  void connect(std::string_view peer) override { inner_.connect(peer); }
  std::string endpoint_host(std::string_view peer) const override { return inner_.endpoint_host(peer); }
  std::size_t send_batch(std::span<const OutDatagram> datagrams) override {
    const std::size_t n = inner_.send_batch(datagrams);
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += datagrams[i].bytes;
    std::this_thread::sleep_for(std::chrono::duration<double>(static_cast<double>(bytes) / rate_));
    return n;
  }
  std::size_t receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) override {
    return inner_.receive_batch(out, timeout);
  }
  int poll_fd() const override { return inner_.poll_fd(); }
  DatagramStats stats() const override { return inner_.stats(); }

 private:
  DatagramChannel& inner_;
  double rate_;
};

// Compressible memory behind a slow link that the kernel, not the pacer, holds the lane to: the
// lane waits in its sends, and zstd (a few us a page) moves pages faster there. The governor must
// see that wait as idle; counted as work (wall time), it never tried compressing at all.
TEST(DatagramStreamer, CompressesBehindALinkTheKernelHoldsItTo) {
  std::vector<std::byte> source(kPages * kPage);
  for (std::size_t p = 0; p < kPages; ++p)
    for (std::size_t i = 0; i < kPage; ++i) source[p * kPage + i] = std::byte("migrate "[i % 8] + p % 7);
  const SessionSecrets secrets = SessionSecrets::random_for_testing();
  const DatagramLayout layout = make_layout(kPage, 1472);
  Impairments clean;
  clean.max_datagram = 1472;
  FakeDatagramPair link = make_fake_datagram_pair(clean);
  KernelHeldChannel held(*link.a, 10e6);  // 10 MB/s: 400 us a page uncompressed
  std::vector<std::uint64_t> sent_hashes(kPages, 0);
  DatagramStreamer streamer(held, layout, 42, source, sent_hashes, std::chrono::milliseconds(2000),
                            DatagramProtection::aead, secrets, 0, Compression::automatic);
  std::array<InDatagram, 256> in;
  const auto drain = [&] {
    while (link.b->receive_batch(in, std::chrono::microseconds(0)) > 0) {
    }
  };
  Bitmap all(kPages);
  all.set_all();
  const Bitmap no_holes(kPages);
  // Each round is 2 MiB, 0.2 s at 10 MB/s uncompressed; the governor tries after 1 s and judges a
  // 0.3 s window. 40 rounds bound the test on failure.
  for (std::uint32_t round = 0; round < 40 && !streamer.governor().active(); ++round)
    streamer.send_round(
        round, all, no_holes, [] { return 1e12; }, drain);
  EXPECT_TRUE(streamer.governor().active())
      << "trials " << streamer.governor().trials() << ", idle " << streamer.governor().idle_seconds_per_page() * 1e6
      << " us a page, zstd " << streamer.governor().zstd_seconds_per_page() * 1e6 << " us a page, ratio "
      << streamer.governor().ratio();
  EXPECT_GT(streamer.governor().idle_seconds_per_page(), streamer.governor().zstd_seconds_per_page());
}

}  // namespace
}  // namespace hymig
