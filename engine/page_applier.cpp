#include "engine/page_applier.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/single_writer_counter.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/page_record.hpp"

namespace hymig {

PageApplier::Lane::Lane(const SessionSecrets& secrets, std::uint32_t index, const DatagramLayout& layout)
    : index(index),
      keys(secrets, "datagram/" + std::to_string(index), Role::source, AeadCipher::Direction::open),
      scratch(layout.datagram_bytes),
      record_scratch(layout.page_size) {
  staging.bytes.resize(layout.page_size);
  if (layout.chunked())
    for (auto& r : records) {
      r.datagrams.resize(std::size_t{layout.chunk_count} * page_record_datagram_bytes(layout));
      r.chunk_at.resize(layout.chunk_count);
    }
}

PageApplier::PageApplier(std::span<std::byte> image, std::size_t page_size, std::uint64_t session,
                         const DatagramLayout& layout, DatagramProtection protection, const SessionSecrets& secrets,
                         std::uint32_t lanes, bool keep_hashes, bool starts_zeroed, bool compressed_pages)
    : image_(image), page_size_(page_size), page_count_(image.size() / page_size), session_(session), layout_(layout),
      protection_(protection), compressed_pages_(compressed_pages), present_(page_count_), round_tag_(page_count_, 0), hashes_(page_count_, 0),
      keep_hashes_(keep_hashes), maybe_nonzero_(page_count_) {
  for (std::uint32_t l = 0; l < std::max<std::uint32_t>(lanes, 1); ++l)
    lanes_.push_back(std::make_unique<Lane>(secrets, l, layout));
  if (!starts_zeroed) maybe_nonzero_.set_all();
}

std::uint64_t PageApplier::datagrams() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->datagrams.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t PageApplier::bytes() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->bytes.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t PageApplier::taken() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->taken.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t PageApplier::next_seq() const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->next_seq.load(std::memory_order_acquire);
  return n;
}

std::uint64_t PageApplier::dropped(DropReason r) const {
  std::uint64_t n = 0;
  for (const auto& l : lanes_) n += l->drops[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  return n;
}

std::uint64_t PageApplier::invalid() const {
  std::uint64_t n = 0;
  for (std::size_t r = 0; r < static_cast<std::size_t>(DropReason::count_); ++r)
    if (r != static_cast<std::size_t>(DropReason::stale_round) &&
        r != static_cast<std::size_t>(DropReason::broken_record))
      n += dropped(static_cast<DropReason>(r));
  return n;
}

std::uint64_t PageApplier::receive_frontier() const {
  std::uint64_t least = UINT64_MAX;
  for (const auto& l : lanes_) least = std::min(least, l->frontier.load(std::memory_order_relaxed));
  return std::max(least, reliable_frontier_.load(std::memory_order_relaxed));
}

std::int64_t PageApplier::take_min_owd() {
  std::int64_t v = INT64_MAX;
  for (auto& l : lanes_) v = std::min(v, l->min_owd.exchange(INT64_MAX, std::memory_order_relaxed));
  return v;
}

std::pair<std::uint64_t, std::uint64_t> PageApplier::newest_stamp() const {
  std::pair<std::uint64_t, std::uint64_t> best{0, 0};
  for (const auto& l : lanes_) {
    const std::uint64_t arrival = l->newest_arrival.load(std::memory_order_relaxed);
    const std::uint64_t stamp = l->newest_stamp.load(std::memory_order_relaxed);
    if (stamp > best.first) best = {stamp, arrival};
  }
  return best;
}

Bitmap PageApplier::written_since(std::uint32_t round) const {
  Bitmap out(page_count_);
  const std::uint32_t tag = round + 1;  // kFinalRound pages carry kFinalRound itself, above any round + 1
  for (std::uint64_t p = 0; p < page_count_; ++p)
    if (round_tag_[p] >= tag) out.set(p);
  return out;
}

void PageApplier::cut_off_rounds(std::uint32_t round) {
  min_round_.store(std::max(min_round_.load(std::memory_order_relaxed), round), std::memory_order_relaxed);
}

bool PageApplier::may_write_page(std::uint64_t p, std::uint32_t tag) const {
  return !present_.test(p) && round_tag_[p] <= tag;
}

DropReason PageApplier::count_drop(Lane& lane, DropReason r, std::uint64_t n) {
  add_single_writer(lane.drops[static_cast<std::size_t>(r)], n);
  return r;
}

// Opens the entries (decrypted, or taken as they are with protection mac), then decrypts (or
// checks) the payload; the datagram's drop reason: none when the tag verified and the entries make
// sense. Each payload piece is opened into its page where may_write allows, else into the lane's
// scratch; lane.opened says where. Entries that make no sense (out of range, a wrong count, a
// page of another lane) cannot say where anything goes: the payload is then opened into scratch
// only, and the tag decides whether the datagram was forged (bad-mac) or a sender's mistake.
DropReason PageApplier::open_datagram(Lane& lane, DatagramView& v, std::uint32_t tag) {
  AeadCipher& c = lane.keys.for_seq(v.header.seq);
  c.begin(v.header.seq, v.head);
  const bool clear = protection_ == DatagramProtection::mac;
  if (clear) {
    c.authenticate(v.sealed_entries);
    v.entries = v.sealed_entries.data();
  } else {
    c.crypt(v.sealed_entries, lane.entries.data());
    v.entries = lane.entries.data();
  }
  const DropReason shape = check_datagram_entries(v, page_count_, lanes(), layout_, compressed_pages_);
  const auto verified = [&] {
    return c.finish_open(std::span<const std::byte, kDatagramTagBytes>(v.tag, kDatagramTagBytes));
  };
  if (shape != DropReason::none) {
    if (clear) c.authenticate(v.payload);
    else c.crypt(v.payload, lane.scratch.data());
    return verified() ? shape : DropReason::bad_mac;
  }
  if (clear) {
    c.authenticate(v.payload);
    std::size_t off = 0;
    for (std::size_t i = 0; i < v.header.entry_count; ++i) {
      if (v.header.chunk_count == 1 && v.entry_at(i).zero) continue;
      lane.opened[i] = const_cast<std::byte*>(v.payload.data()) + off;  // read only, after the tag verified
      off += v.header.chunk_count == 1 ? v.entry_at(i).payload_bytes(page_size_) : v.payload.size();
    }
  } else if (v.header.chunk_count > 1) {
    // A compressed page's chunk (check_datagram_entries let no raw one through): its bytes are
    // assembled and decompressed once authentic.
    c.crypt(v.payload, lane.scratch.data());
    lane.opened[0] = lane.scratch.data();
  } else {
    std::size_t off = 0, used = 0;
    for (std::size_t i = 0; i < v.header.entry_count; ++i) {
      const DatagramEntry e = v.entry_at(i);
      if (e.zero) continue;
      const std::size_t len = e.payload_bytes(page_size_);
      std::byte* dst;
      if (!e.compressed && may_write_page(e.page, tag)) {
        dst = image_.data() + e.page * page_size_;
        maybe_nonzero_.set(e.page);
      } else {
        dst = lane.scratch.data() + used;  // the payload fits the datagram, so its pieces fit the scratch
        used += len;
      }
      c.crypt(v.payload.subspan(off, len), dst);
      lane.opened[i] = dst;
      off += len;
    }
  }
  return verified() ? DropReason::none : DropReason::bad_mac;
}

DropReason PageApplier::apply_datagram(std::uint32_t lane_index, std::span<const std::byte> bytes, std::uint64_t now_ns) {
  Lane& lane = *lanes_[lane_index];
  const DropReason r = apply_one(lane, bytes, now_ns);
  keep_borrowed(lane);
  return r;
}

void PageApplier::apply_batch(std::uint32_t lane_index, std::span<const InDatagram> batch, std::uint64_t now_ns) {
  Lane& lane = *lanes_[lane_index];
  for (const auto& d : batch) apply_one(lane, d.bytes, now_ns);
  keep_borrowed(lane);
}

void PageApplier::keep_borrowed(Lane& lane) {
  const std::size_t size = page_record_datagram_bytes(layout_);
  for (auto& slot : lane.records) {
    if (slot.used)
      for (std::uint64_t b = slot.borrowed; b; b &= b - 1) {
        const auto i = static_cast<std::size_t>(std::countr_zero(b));
        std::memcpy(slot.datagrams.data() + i * size, slot.chunk_at[i], size);
      }
    slot.borrowed = 0;
  }
}

DropReason PageApplier::apply_one(Lane& lane, std::span<const std::byte> bytes, std::uint64_t now_ns) {
  add_single_writer(lane.taken, 1);
  DatagramView v;
  DropReason r = decode_datagram(bytes, session_, lane.index, layout_, protection_, v);
  if (r == DropReason::none && v.header.round > announced_round_.load(std::memory_order_relaxed))
    r = DropReason::future_round;
  if (r == DropReason::none && v.header.round < min_round_.load(std::memory_order_relaxed)) r = DropReason::stale_round;
  if (r == DropReason::none && lane.window.check(v.header.seq) != ReplayWindow::Verdict::fresh) r = DropReason::replayed;
  // A key epoch more than one past the newest authentic datagram's is no sender's: not derived.
  if (r == DropReason::none && EpochKeys::epoch_of(v.header.seq) > EpochKeys::epoch_of(lane.window.highest()) + 1)
    r = DropReason::bad_shape;
  // Round tag: round + 1, so 0 means "never written".
  const std::uint32_t tag = v.header.round + 1;
  if (r == DropReason::none && (v.header.flags & kDatagramPageRecord)) return take_record_chunk(lane, v, bytes, now_ns);
  if (r == DropReason::none) r = open_datagram(lane, v, tag);
  if (r != DropReason::none) return count_drop(lane, r);
  lane.window.mark(v.header.seq);
  r = v.header.chunk_count > 1 ? apply_compressed_chunk(lane, v, tag) : apply_whole(lane, v, tag);
  if (v.header.entry_count > 0) advance_frontier(lane, v.entry_at(v.header.entry_count - 1u).page);
  count_authentic(lane, v.header, 1, bytes.size(), now_ns);
  // Stale entries inside an authentic datagram are counted but the datagram counts as received:
  // the loss estimate is about the path, not about our page bookkeeping.
  if (r != DropReason::none) count_drop(lane, r);
  return r;
}

void PageApplier::count_authentic(Lane& lane, const DatagramHeader& last, std::uint64_t count, std::uint64_t bytes,
                                  std::uint64_t now_ns) {
  add_single_writer(lane.datagrams, count);
  add_single_writer(lane.bytes, bytes);
  // Released after the counts: a reader that loads next_seq first sees at least the datagrams
  // behind it (next_seq()).
  if (last.seq + 1 > lane.next_seq.load(std::memory_order_relaxed))
    lane.next_seq.store(last.seq + 1, std::memory_order_release);
  if (last.send_time_ns > lane.newest_stamp.load(std::memory_order_relaxed)) {
    lane.newest_arrival.store(now_ns, std::memory_order_relaxed);
    lane.newest_stamp.store(last.send_time_ns, std::memory_order_relaxed);
  }
  const auto owd = static_cast<std::int64_t>(now_ns - last.send_time_ns);
  if (owd < lane.min_owd.load(std::memory_order_relaxed)) lane.min_owd.store(owd, std::memory_order_relaxed);
}

DropReason PageApplier::take_record_chunk(Lane& lane, const DatagramView& v, std::span<const std::byte> bytes,
                                          std::uint64_t now_ns) {
  const DatagramHeader& h = v.header;
  // Fixed zeros, not part of the record, so checked as the chunk comes, before it is kept: the
  // tag field of all chunks but the last, the entry field of all but chunk 0.
  const auto zeros = [](const std::byte* p, std::size_t n) {
    return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
  };
  const bool last = h.chunk_index + 1 == h.chunk_count;
  if ((!last && !zeros(v.tag, kDatagramTagBytes)) ||
      (h.chunk_index > 0 && !zeros(v.sealed_entries.data(), kEntryBytes)) || h.chunk_index > h.seq)
    return count_drop(lane, DropReason::bad_mac);
  Lane::RecordSlot* slot = record_slot(lane, h.seq - h.chunk_index);
  if (!slot) return count_drop(lane, DropReason::broken_record);
  const std::uint64_t bit = std::uint64_t{1} << h.chunk_index;
  if (slot->mask & bit) return count_drop(lane, DropReason::broken_record);  // a duplicate: the first one stays
  slot->chunk_at[h.chunk_index] = bytes.data();  // borrowed until the batch ends (keep_borrowed)
  slot->borrowed |= bit;
  slot->mask |= bit;
  slot->last_use = ++lane.record_clock;
  if (slot->mask != (h.chunk_count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << h.chunk_count) - 1))
    return DropReason::none;
  slot->used = false;
  return open_record(lane, *slot, now_ns);
}

PageApplier::Lane::RecordSlot* PageApplier::record_slot(Lane& lane, std::uint64_t first) {
  // The record's own slot; else a free one; else the one added to least recently. Not the
  // lowest-numbered: a chunk's number is not authentic yet, and forged or corrupted chunks
  // claiming future records must not hold the slots that real records need.
  const auto rank = [](const Lane::RecordSlot& r) { return r.used ? r.last_use + 1 : 0; };
  Lane::RecordSlot* slot = lane.records.data();
  for (auto& r : lane.records) {
    if (r.used && r.first_seq == first) return &r;
    if (rank(r) < rank(*slot)) slot = &r;
  }
  // A record at or below one given up: a duplicate or straggler whose siblings are gone. Kept, it
  // would only push out a record that can still complete.
  if (first < lane.credit_from) return nullptr;
  if (slot->used) give_up_record(lane, *slot);
  slot->used = true;
  slot->first_seq = first;
  slot->mask = 0;
  slot->borrowed = 0;
  return slot;
}

void PageApplier::give_up_record(Lane& lane, Lane::RecordSlot& slot) {
  const auto n = static_cast<std::uint64_t>(std::popcount(slot.mask));
  count_drop(lane, DropReason::broken_record, n);
  slot.used = false;
  // Credited only where authentic datagrams have been (a forger's chunks claiming records ahead
  // of the stream count for nothing) and each number once: at most the loss that really happened
  // can be hidden, never more datagrams than were sent.
  const std::uint64_t end = slot.first_seq + layout_.chunk_count;
  if (slot.first_seq < lane.credit_from || end > lane.window.highest() + 1) return;
  lane.credit_from = end;
  add_single_writer(lane.datagrams, n);
  add_single_writer(lane.bytes, n * page_record_datagram_bytes(layout_));
}

DropReason PageApplier::open_record(Lane& lane, Lane::RecordSlot& slot, std::uint64_t now_ns) {
  const std::size_t size = page_record_datagram_bytes(layout_);
  const std::uint16_t n = layout_.chunk_count;
  const auto chunk = [&](std::uint16_t i) {
    DatagramView v;
    decode_datagram({slot.chunk(i, size), size}, session_, lane.index, layout_, protection_, v);
    return v;  // it decoded when it came
  };
  DatagramView v0 = chunk(0);
  const DatagramHeader first = v0.header;
  const std::uint32_t tag = first.round + 1;
  const bool clear = protection_ == DatagramProtection::mac;
  AeadCipher& c = lane.keys.for_seq(first.seq);
  c.begin(first.seq, v0.head);
  std::array<std::byte, kEntryBytes> entry_bytes;
  if (clear) {
    c.authenticate(v0.sealed_entries);
    std::memcpy(entry_bytes.data(), v0.sealed_entries.data(), kEntryBytes);
  } else {
    c.crypt(v0.sealed_entries, entry_bytes.data());
  }
  v0.entries = entry_bytes.data();
  DropReason shape = check_datagram_entries(v0, page_count_, lanes(), layout_, compressed_pages_);
  const DatagramEntry entry = v0.entry_at(0);
  std::byte* dst = lane.record_scratch.data();
  if (shape == DropReason::none && may_write_page(entry.page, tag)) {
    dst = image_.data() + entry.page * page_size_;  // not present: its bytes are disposable
    maybe_nonzero_.set(entry.page);                 // conservatively, before any byte lands
  }
  bool padding_zero = true;
  DatagramView v = v0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (i > 0) {
      v = chunk(i);
      // Its header must be the one chunk 0's implies (all fields, so the record covers them all).
      // A mismatch leaves only disposable bytes written, as a failed tag does.
      const DatagramHeader& h = v.header;
      const DatagramHeader want = page_record_chunk_header(first, i);
      if (h.flags != want.flags || h.entry_count != want.entry_count || h.send_time_ns != want.send_time_ns ||
          h.round != want.round || h.chunk_count != want.chunk_count || h.payload_bytes != want.payload_bytes)
        return count_drop(lane, DropReason::bad_mac);
    }
    const std::size_t len = layout_.chunk_len(i);
    const auto pad = v.payload.subspan(len);
    std::span<const std::byte> pad_clear = pad;
    if (clear) {
      c.authenticate(v.payload);
      std::memcpy(dst + std::size_t{i} * layout_.chunk_bytes, v.payload.data(), len);
    } else {
      c.crypt(v.payload.first(len), dst + std::size_t{i} * layout_.chunk_bytes);
      c.crypt(pad, lane.padding.data());
      pad_clear = std::span<const std::byte>(lane.padding.data(), pad.size());
    }
    padding_zero =
        padding_zero && std::all_of(pad_clear.begin(), pad_clear.end(), [](std::byte b) { return b == std::byte{0}; });
  }
  if (!c.finish_open(std::span<const std::byte, kDatagramTagBytes>(v.tag, kDatagramTagBytes)))
    return count_drop(lane, DropReason::bad_mac);
  if (shape == DropReason::none && !padding_zero) shape = DropReason::bad_shape;
  if (shape != DropReason::none) return count_drop(lane, shape);
  for (std::uint16_t i = 0; i < n; ++i) lane.window.mark(first.seq + i);
  const DropReason r = land_record(entry, dst, tag);
  advance_frontier(lane, entry.page);
  count_authentic(lane, v.header, n, std::uint64_t{n} * size, now_ns);
  if (r != DropReason::none) count_drop(lane, r);
  return r;
}

DropReason PageApplier::land_record(const DatagramEntry& entry, const std::byte* opened, std::uint32_t tag) {
  const std::uint64_t p = entry.page;
  if (round_tag_[p] > tag) return DropReason::stale_round;
  std::byte* const page = image_.data() + p * page_size_;
  if (keep_hashes_) {
    // Authentic is not correct: the page must hash as its entry says (else a sender's mistake).
    const std::uint64_t h = hash_page(opened, page_size_);
    if (h != entry.hash) {
      if (opened == page) present_.reset(p);
      return DropReason::bad_hash;
    }
    hashes_[p] = h;
  }
  if (opened != page) {
    std::memcpy(page, opened, page_size_);
    maybe_nonzero_.set(p);
  }
  round_tag_[p] = tag;
  present_.set(p);
  return DropReason::none;
}

DropReason PageApplier::apply_whole(Lane& lane, const DatagramView& v, std::uint32_t tag) {
  DropReason result = DropReason::none;
  for (std::size_t i = 0; i < v.header.entry_count; ++i) {
    const DatagramEntry e = v.entry_at(i);
    if (round_tag_[e.page] > tag) {
      result = DropReason::stale_round;
      continue;
    }
    std::byte* page = image_.data() + e.page * page_size_;
    if (e.zero) {
      if (maybe_nonzero_.test(e.page)) {
        std::memset(page, 0, page_size_);
        maybe_nonzero_.reset(e.page);
      }
    } else if (e.compressed) {
      maybe_nonzero_.set(e.page);
      if (!lane.zstd.decompress({lane.opened[i], e.compressed}, {page, page_size_})) {
        // Authentic but not a page: whatever the page held is gone, so it is missing now.
        present_.reset(e.page);
        result = DropReason::bad_compressed;
        continue;
      }
    } else {
      if (lane.opened[i] != page) std::memcpy(page, lane.opened[i], page_size_);
      maybe_nonzero_.set(e.page);
    }
    if (keep_hashes_) hashes_[e.page] = e.zero ? e.hash : hash_page(page, page_size_);
    round_tag_[e.page] = tag;
    present_.set(e.page);
  }
  return result;
}

DropReason PageApplier::apply_compressed_chunk(Lane& lane, const DatagramView& v, std::uint32_t tag) {
  const DatagramEntry e = v.entry_at(0);
  const std::uint64_t p = e.page;
  if (round_tag_[p] > tag) return DropReason::stale_round;
  // One page's compressed chunks at a time per lane (a lane sends them back to back): another
  // page, round or length starts over, and what was gathered is lost like a lost chunk.
  auto& z = lane.staging;
  if (z.page != p || z.tag != tag || z.length != e.compressed) {
    z.page = p;
    z.tag = tag;
    z.length = e.compressed;
    z.mask = 0;
  }
  const std::uint64_t bit = std::uint64_t{1} << v.header.chunk_index;
  if (z.mask & bit) return DropReason::none;  // a duplicate
  std::memcpy(z.bytes.data() + std::size_t{v.header.chunk_index} * layout_.chunk_bytes, lane.opened[0], v.payload.size());
  z.mask |= bit;
  if (z.mask != (std::uint64_t{1} << v.header.chunk_count) - 1) return DropReason::none;
  z.page = ~std::uint64_t{0};
  std::byte* page = image_.data() + p * page_size_;
  maybe_nonzero_.set(p);
  if (!lane.zstd.decompress({z.bytes.data(), e.compressed}, {page, page_size_})) {
    present_.reset(p);
    return DropReason::bad_compressed;
  }
  if (keep_hashes_) hashes_[p] = hash_page(page, page_size_);
  round_tag_[p] = tag;
  present_.set(p);
  return DropReason::none;
}

void PageApplier::begin_round(std::uint32_t r, const Bitmap& pages) {
  announced_round_.store(std::max(announced_round_.load(std::memory_order_relaxed), r), std::memory_order_relaxed);
  pages.for_each_set([&](std::uint64_t p) {
    if (round_tag_[p] < r + 1) present_.reset(p);
  });
}

void PageApplier::note_pages_written(std::span<const std::uint64_t> pages, std::uint32_t round) {
  if (!pages.empty() && pages.back() + 1 > reliable_frontier_.load(std::memory_order_relaxed))
    reliable_frontier_.store(pages.back() + 1, std::memory_order_relaxed);
  for (auto p : pages) {
    if (keep_hashes_) hashes_[p] = hash_page(image_.data() + p * page_size_, page_size_);
    round_tag_[p] = std::max(round_tag_[p], round == kFinalRound ? kFinalRound : round + 1);
    maybe_nonzero_.set(p);
    present_.set(p);
  }
}

}  // namespace hymig
