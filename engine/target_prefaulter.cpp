#include "engine/target_prefaulter.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

namespace hymig {
namespace {

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack the name
#endif

// How much is populated between two looks at the frontier: one huge page.
constexpr std::size_t kStepBytes = 2 << 20;

}  // namespace

TargetPrefaulter::TargetPrefaulter(std::span<std::byte> image, std::size_t page_size, Bitmap pages, Frontier frontier)
    : image_(image), page_size_(page_size), pages_(std::move(pages)), frontier_(std::move(frontier)) {
  thread_ = std::thread([this] { run(); });
}

void TargetPrefaulter::stop() noexcept {
  stop_.store(true, std::memory_order_relaxed);
  wait();
}

void TargetPrefaulter::wait() noexcept {
  if (thread_.joinable()) thread_.join();
}

std::uint64_t TargetPrefaulter::count_set(std::uint64_t from, std::uint64_t to) const {
  std::uint64_t n = 0;
  for (std::uint64_t q = pages_.next_set(from); q < to; q = pages_.next_set(q + 1)) ++n;
  return n;
}

void TargetPrefaulter::run() noexcept {
  const std::uint64_t count = std::min<std::uint64_t>(pages_.size(), image_.size() / page_size_);
  const std::uint64_t step = std::max<std::uint64_t>(1, kStepBytes / page_size_);
  for (std::uint64_t w = 0; w < count; w += step) {
    if (stop_.load(std::memory_order_relaxed)) return;
    const std::uint64_t end = std::min(count, w + step);
    // Behind the receiver: what it passed is its own.
    const std::uint64_t from = std::max(w, std::min(frontier_(), end));
    passed_.fetch_add(count_set(w, from) * page_size_, std::memory_order_relaxed);
    // The runs of wanted pages left in the step, one madvise each.
    for (std::uint64_t p = pages_.next_set(from); p < end;) {
      std::uint64_t e = p + 1;
      while (e < end && pages_.test(e)) ++e;
      if (::madvise(image_.data() + p * page_size_, (e - p) * page_size_, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINTR || errno == EAGAIN) {
          if (stop_.load(std::memory_order_relaxed)) return;
          continue;  // the same run again
        }
        error_.store(errno, std::memory_order_relaxed);
        return;
      }
      populated_.fetch_add((e - p) * page_size_, std::memory_order_relaxed);
      p = pages_.next_set(e);
    }
  }
}

}  // namespace hymig
