#include "images/synthetic_image.hpp"

#include <atomic>
#include <chrono>
#include <cstring>

#include "core/error.hpp"
#include "core/parallel.hpp"

namespace hymig {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

SyntheticImage::SyntheticImage(const SyntheticSpec& spec) : spec_(spec) {
  if (spec_.page_size < 512 || (spec_.page_size & (spec_.page_size - 1)))
    throw Error(ErrorKind::usage, "synthetic image: page size must be a power of two >= 512");
  if (spec_.size == 0 || spec_.size % spec_.page_size)
    throw Error(ErrorKind::usage, "synthetic image: size must be a non-zero multiple of " +
                                      std::to_string(spec_.page_size) + " bytes");
  pages_ = spec_.size / spec_.page_size;
  const std::uint64_t ws = spec_.working_set ? std::min(spec_.working_set, spec_.size) : spec_.size;
  ws_pages_ = std::max<std::uint64_t>(1, ws / spec_.page_size);
  mem_ = map_anonymous(spec_.size, "the synthetic image");
  dirty_log_ = Bitmap(pages_);

  // Fill with seeded pseudo-random words; a zero_fraction share of pages stays zero, and the
  // compressible share of each other page's words is a repeated (text-like) pattern.
  const auto zero_cut = static_cast<std::uint64_t>(spec_.zero_fraction * 18446744073709551615.0);
  const std::size_t words = spec_.page_size / 8;
  const auto random_words = static_cast<std::size_t>(static_cast<double>(words) * (1 - spec_.compressible));
  parallel_for(pages_, 0, [&](std::uint64_t b, std::uint64_t e) {
    for (std::uint64_t p = b; p < e; ++p) {
      std::uint64_t s = spec_.seed * 0x100000001b3ull ^ p;
      if (spec_.zero_fraction > 0 && splitmix64(s) < zero_cut) continue;
      auto* w = reinterpret_cast<std::uint64_t*>(mem_.data() + p * spec_.page_size);
      for (std::size_t i = 0; i < random_words; ++i) w[i] = splitmix64(s);
      for (std::size_t i = random_words; i < words; ++i) w[i] = 0x2065676170206120ull + (i % 5);  // " a page "
    }
  });

  if (spec_.dirty_rate > 0)
    for (unsigned i = 0; i < std::max(1u, spec_.writers); ++i) writers_.emplace_back([this, i] { writer_loop(i); });
}

SyntheticImage::~SyntheticImage() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : writers_) t.join();
}

void SyntheticImage::writer_loop(unsigned index) {
  using clock = std::chrono::steady_clock;
  const unsigned n = std::max(1u, spec_.writers);
  const double pages_per_sec = static_cast<double>(spec_.dirty_rate) / spec_.page_size / n;
  std::uint64_t rng = spec_.seed ^ (0xabcdef12345ull * (index + 1));
  auto start = clock::now();
  std::uint64_t done = 0;
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (paused_ || stopping_) {
        ++parked_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !paused_ || stopping_; });
        --parked_;
        if (stopping_) return;
        start = clock::now();  // do not catch up on the paused time
        done = 0;
      }
    }
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    const auto due = static_cast<std::uint64_t>(elapsed * pages_per_sec);
    // At most 1 ms worth per step so pause() is answered quickly.
    const std::uint64_t batch = std::min<std::uint64_t>(due - std::min(due, done), 1 + static_cast<std::uint64_t>(pages_per_sec / 1000));
    for (std::uint64_t k = 0; k < batch; ++k) {
      const std::uint64_t page = splitmix64(rng) % ws_pages_;
      const std::size_t line = (splitmix64(rng) % (spec_.page_size / 64)) * 64;
      auto* w = reinterpret_cast<std::uint64_t*>(mem_.data() + page * spec_.page_size + line);
      const std::uint64_t v = splitmix64(rng);
      // Write first, then mark: the sender clears the mark before it reads the page, so a write
      // that lands after the read is always marked again (the same order as a CPU's dirty log).
      for (int i = 0; i < 8; ++i) std::atomic_ref<std::uint64_t>(w[i]).store(v + i, std::memory_order_relaxed);
      dirty_log_.atomic_set(page);
    }
    done += batch;
    writes_.fetch_add(batch, std::memory_order_relaxed);
    if (batch == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

void SyntheticImage::start_dirty_tracking() {
  Bitmap discard(pages_);
  dirty_log_.atomic_drain_into(discard);
}

void SyntheticImage::collect_dirty(Bitmap& out, std::span<const std::uint64_t>) { dirty_log_.atomic_drain_into(out); }

void SyntheticImage::pause() {
  std::unique_lock lock(mu_);
  paused_ = true;
  cv_.wait(lock, [&] { return parked_ == writers_.size(); });
}

void SyntheticImage::resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  cv_.notify_all();
}

void SyntheticImage::handed_over() {
  // The writers stay parked: the workload now runs on the destination.
  std::lock_guard lock(mu_);
  paused_ = true;
}

}  // namespace hymig
