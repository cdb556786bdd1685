// A synthetic image whose all-zero pages report as holes (SourceImage::find_zero_pages), as the
// RAM file of a guest reports the pages it never touched: they go as zero entries unread, and
// round 0 names them to the destination. Modified pages are found by hashing (no write log),
// like a VM's RAM file. For the engine tests only.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "images/synthetic_image.hpp"

namespace hymig::harness {

class HoleySource final : public SourceImage {
 public:
  explicit HoleySource(const SyntheticSpec& spec) : inner_(spec) {}
  std::string kind() const override { return "synthetic"; }
  std::string name() const override { return "holey"; }
  std::size_t page_size() const override { return inner_.page_size(); }
  std::uint64_t page_count() const override { return inner_.page_count(); }
  std::span<const std::byte> memory() const override { return inner_.memory(); }
  // The pages that are all zero right now (the writers keep going); counts the calls.
  void find_zero_pages(Bitmap& out) const override;
  void start_dirty_tracking() override { inner_.start_dirty_tracking(); }
  void collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent) override;
  void pause() override { inner_.pause(); }
  void resume() override { inner_.resume(); }
  void handed_over() override { inner_.handed_over(); }

  mutable std::uint64_t finds = 0;

 private:
  SyntheticImage inner_;
};

// Sets in `out` the pages of `mem` that are all zero; counts the call in `calls`.
void find_zero_pages_now(std::span<const std::byte> mem, std::size_t page_size, Bitmap& out, std::uint64_t* calls);

}  // namespace hymig::harness
