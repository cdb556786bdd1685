// An in-process image with writer threads that dirty pages of a working set at a set rate, with an
// exact dirty log: the default image for the demo, tests and benchmarks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/mapping.hpp"
#include "images/image.hpp"

namespace hymig {

struct SyntheticSpec {
  std::uint64_t size = 1ull << 30;
  std::uint64_t dirty_rate = 0;       // bytes per second of pages dirtied (pages/s * page size)
  std::uint64_t working_set = 0;      // 0 = whole image
  std::uint64_t seed = 1;
  double zero_fraction = 0.0;         // share of pages left all-zero, like a guest's untouched RAM
  double compressible = 0.0;          // share of each other page's bytes that is a repeated pattern
  unsigned writers = 1;
  std::size_t page_size = 4096;
};

class SyntheticImage final : public SourceImage {
 public:
  explicit SyntheticImage(const SyntheticSpec& spec);
  ~SyntheticImage() override;

  std::string kind() const override { return "synthetic"; }
  std::string name() const override { return "synthetic"; }
  std::size_t page_size() const override { return spec_.page_size; }
  std::uint64_t page_count() const override { return pages_; }
  std::span<const std::byte> memory() const override { return {mem_.data(), mem_.size()}; }
  void start_dirty_tracking() override;
  void collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent_hashes) override;
  void pause() override;
  void resume() override;
  void handed_over() override;

  // For tests: the count of writes done.
  std::uint64_t writes_done() const { return writes_.load(); }

 private:
  void writer_loop(unsigned index);

  SyntheticSpec spec_;
  std::uint64_t pages_;
  std::uint64_t ws_pages_;
  Mapping mem_;
  Bitmap dirty_log_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool paused_ = false;
  bool stopping_ = false;
  unsigned parked_ = 0;
  std::atomic<std::uint64_t> writes_{0};
  std::vector<std::thread> writers_;
};

}  // namespace hymig
