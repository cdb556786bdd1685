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

}  // namespace
}  // namespace hymig
