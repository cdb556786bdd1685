// A file image written by another process the way a guest writes its locks and flags: words set
// and cleared again, so a page often returns to the very bytes it held (A -> B -> A). The source
// finds modified pages by comparing hashes with the ones it recorded as pages went; if a recorded
// hash were not the hash of the bytes that went, such a page would look clean while the
// destination holds B, and the migration would fail its digest. The destination must end byte for
// byte equal to the paused source, for the datagram path (whole pages and chunks) and --bulk tcp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "images/file_image.hpp"
#include "testing/engine_harness.hpp"

namespace hymig {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kPages = 1024;

// The image file (under TMPDIR), removed when the test ends.
struct ImageFile {
  std::string path;
  ImageFile() {
    const char* dir = std::getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/hymig-toggle-" + std::to_string(::getpid());
    std::vector<std::byte> bytes(kPages * kPage);
    std::mt19937_64 rng(11);
    for (std::size_t i = 0; i < bytes.size(); i += 8) {
      const std::uint64_t v = i % (4 * kPage) < kPage ? 0 : rng();  // a quarter zero pages
      std::memcpy(bytes.data() + i, &v, 8);
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
      throw std::runtime_error("cannot write " + path);
    ::close(fd);
  }
  ~ImageFile() { ::unlink(path.c_str()); }
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
};

// The guest: sets a word in each of 64 random pages, holds a moment, clears them again.
class TogglingGuest {
 public:
  explicit TogglingGuest(const std::string& path) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ != 0) return;
    const int fd = ::open(path.c_str(), O_RDWR);
    void* p = fd < 0 ? MAP_FAILED : ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) ::_exit(1);
    auto* words = static_cast<volatile std::uint64_t*>(p);
    std::uint64_t x = 88172645463325252ull;
    std::uint64_t at[64];
    for (;;) {
      for (auto& a : at) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a = x % (kPages * kPage / 8);
        words[a] ^= 1;
      }
      for (volatile int spin = 0; spin < 2000; ++spin) {
      }
      for (auto a : at) words[a] ^= 1;  // back to what the page held
      for (volatile int spin = 0; spin < 2000; ++spin) {
      }
    }
  }
  ~TogglingGuest() {
    ::kill(pid_, SIGKILL);  // after the handover it is already gone, unreaped
    ::waitpid(pid_, nullptr, 0);
  }
  TogglingGuest(const TogglingGuest&) = delete;
  TogglingGuest& operator=(const TogglingGuest&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

struct Case {
  const char* name;
  BulkTransport bulk;
  std::size_t datagram;
  VerifyMode verify;
};

class EngineTogglingGuest : public ::testing::TestWithParam<Case> {};

TEST_P(EngineTogglingGuest, DestinationEqualsPausedSource) {
  const Case c = GetParam();
  ImageFile file;
  TogglingGuest guest(file.path);
  FileImage image(file.path, guest.pid());
  SourceOptions opts;
  opts.bulk = c.bulk;
  opts.initial_rate = 200 << 20;
  opts.downtime_ms = 50;
  opts.max_rounds = 6;
  opts.datagram_bytes = c.datagram;
  opts.verify = c.verify;
  Impairments imp;
  imp.max_datagram = c.datagram;
  harness::TargetRecord target;
  const harness::EngineRun run =
      harness::run_engines(harness::fake_channels(imp), image, harness::kept_targets(target), opts);
  ASSERT_TRUE(run.source.committed()) << run.source.error << " / destination: " << run.dest.error;
  EXPECT_TRUE(run.source.verified);
  EXPECT_TRUE(target.committed);
  // The guest was stopped at the pause and killed at the handover: the file holds still.
  ASSERT_EQ(target.memory.size(), image.memory().size());
  EXPECT_EQ(0, std::memcmp(target.memory.data(), image.memory().data(), image.memory().size()));
}

const Case kCases[] = {
    {"datagrams_whole", BulkTransport::udp, 65507, VerifyMode::full},
    {"datagrams_whole_verify_fast", BulkTransport::udp, 65507, VerifyMode::fast},
    {"datagrams_chunked1472", BulkTransport::udp, 1472, VerifyMode::full},
    {"bulk_tcp", BulkTransport::tcp, 65507, VerifyMode::full},
};

INSTANTIATE_TEST_SUITE_P(Paths, EngineTogglingGuest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hymig
