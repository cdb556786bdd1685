#include "transport/page_applier.hpp"

#include <cstring>

#include "transport/page_hash.hpp"

namespace hymig {

PageApplier::PageApplier(std::span<std::byte> image, std::size_t page_size, std::uint64_t session,
                         const DatagramLayout& layout, bool keep_hashes, bool starts_zeroed)
    : image_(image), page_size_(page_size), page_count_(image.size() / page_size), session_(session),
      layout_(layout), zero_hash_(zero_page_hash(page_size)), present_(page_count_), round_tag_(page_count_, 0),
      hashes_(page_count_, 0), keep_hashes_(keep_hashes), maybe_nonzero_(page_count_) {
  if (layout_.chunked()) chunk_mask_.assign(page_count_, 0);
  if (!starts_zeroed) maybe_nonzero_.set_all();
}

std::uint64_t PageApplier::invalid() const {
  std::uint64_t n = 0;
  for (auto d : drops_) n += d;
  return n;
}

std::int64_t PageApplier::take_min_owd() {
  const auto v = min_owd_;
  min_owd_ = INT64_MAX;
  return v;
}

DropReason PageApplier::apply_datagram(std::span<const std::byte> bytes, std::uint64_t now_ns) {
  DatagramView v;
  DropReason r = decode_datagram(bytes, session_, page_count_, layout_, v);
  // A round the source has not announced yet can only come from a forged or corrupted datagram
  // that passed the check: it would otherwise block later legitimate rounds from this page.
  if (r == DropReason::none && v.header.round > announced_round_ + 1) r = DropReason::bad_shape;
  if (r == DropReason::none) {
    // Round tag: round + 1, so 0 means "never written".
    const std::uint32_t tag = v.header.round + 1;
    r = v.header.chunk_count > 1 ? apply_chunk(v, tag) : apply_whole(v, tag);
    ++datagrams_;
    bytes_ += bytes.size();
    next_seq_ = std::max(next_seq_, v.header.seq + 1);
    min_owd_ = std::min(min_owd_, static_cast<std::int64_t>(now_ns - v.header.send_time_ns));
    // Stale or bad-hash entries inside a valid datagram are counted but the datagram counts as
    // received: the loss estimate is about the path, not about our page bookkeeping.
    if (r != DropReason::none) ++drops_[static_cast<std::size_t>(r)];
    return r;
  }
  ++drops_[static_cast<std::size_t>(r)];
  return r;
}

DropReason PageApplier::apply_whole(const DatagramView& v, std::uint32_t tag) {
  DropReason result = DropReason::none;
  const std::byte* payload = v.payload.data();
  for (std::size_t i = 0; i < v.header.entry_count; ++i) {
    const DatagramEntry e = v.entry_at(i);
    const std::byte* src = payload;
    if (!e.zero) payload += page_size_;
    if (round_tag_[e.page] > tag) {
      result = DropReason::stale_round;
      continue;
    }
    std::byte* dst = image_.data() + e.page * page_size_;
    if (e.zero) {
      if (e.hash != zero_hash_) {
        result = DropReason::bad_hash;
        continue;
      }
      if (maybe_nonzero_.test(e.page)) {
        std::memset(dst, 0, page_size_);
        maybe_nonzero_.reset(e.page);
      }
    } else {
      // Hash the received bytes before they touch the image: a corrupted page never lands.
      if (hash_page(src, page_size_) != e.hash) {
        result = DropReason::bad_hash;
        continue;
      }
      std::memcpy(dst, src, page_size_);
      maybe_nonzero_.set(e.page);
    }
    hashes_[e.page] = e.hash;
    round_tag_[e.page] = tag;
    present_.set(e.page);
  }
  return result;
}

DropReason PageApplier::apply_chunk(const DatagramView& v, std::uint32_t tag) {
  const DatagramEntry e = v.entry_at(0);
  const std::uint64_t p = e.page;
  if (round_tag_[p] > tag) return DropReason::stale_round;
  if (round_tag_[p] < tag) {
    // First chunk of a newer round: the page is torn until all its chunks are in.
    round_tag_[p] = tag;
    chunk_mask_[p] = 0;
    present_.reset(p);
  }
  const std::uint64_t bit = std::uint64_t{1} << v.header.chunk_index;
  if (chunk_mask_[p] & bit) return DropReason::none;  // a duplicate: same round, same bytes
  std::byte* dst = image_.data() + p * page_size_ + std::size_t{v.header.chunk_index} * layout_.chunk_bytes;
  std::memcpy(dst, v.payload.data(), v.payload.size());  // the datagram check covered these bytes
  maybe_nonzero_.set(p);
  chunk_mask_[p] |= bit;
  const std::uint64_t full = layout_.chunk_count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << layout_.chunk_count) - 1;
  if (chunk_mask_[p] != full) return DropReason::none;
  const std::uint64_t h = hash_page(image_.data() + p * page_size_, page_size_);
  if (h != e.hash) {
    chunk_mask_[p] = 0;  // chunks of different sends of a torn page: wait for a resend
    return DropReason::bad_hash;
  }
  hashes_[p] = h;
  present_.set(p);
  return DropReason::none;
}

void PageApplier::begin_round(std::uint32_t r, const Bitmap& pages) {
  announced_round_ = std::max(announced_round_, r);
  pages.for_each_set([&](std::uint64_t p) {
    if (round_tag_[p] < r + 1) present_.reset(p);
  });
}

void PageApplier::note_pages_written(std::span<const std::uint64_t> pages, std::uint32_t round) {
  for (auto p : pages) {
    if (keep_hashes_) hashes_[p] = hash_page(image_.data() + p * page_size_, page_size_);
    round_tag_[p] = std::max(round_tag_[p], round == kFinalRound ? kFinalRound : round + 1);
    if (!chunk_mask_.empty()) chunk_mask_[p] = ~std::uint64_t{0};
    maybe_nonzero_.set(p);
    present_.set(p);
  }
}

}  // namespace hymig
