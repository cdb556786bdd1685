#include "engine/datagram_streamer.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/single_writer_counter.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/page_record.hpp"

namespace hymig {
DatagramStreamer::DatagramStreamer(DatagramChannel& ch, const DatagramLayout& layout, std::uint64_t session,
                                   std::span<const std::byte> image, std::span<std::uint64_t> sent_hashes,
                                   std::chrono::milliseconds stall_timeout, DatagramProtection protection,
                                   const SessionSecrets& secrets, std::uint32_t lane, Compression compression)
    : ch_(ch), layout_(layout), session_(session), image_(image), sent_hashes_(sent_hashes),
      stall_timeout_(stall_timeout), zero_hash_(zero_page_hash(layout.page_size)), protection_(protection),
      keys_(secrets, "datagram/" + std::to_string(lane), Role::source, AeadCipher::Direction::seal), lane_(lane),
      governor_(compression, layout.page_size) {
  // A compressed page takes at most 3/4 of a page, and on a chunked path at least one chunk
  // fewer than the page itself (else it saves no datagram).
  compress_cap_ = compressed_limit(layout_.page_size);
  if (layout_.chunked())
    compress_cap_ = std::min<std::size_t>(compress_cap_, std::size_t{layout_.chunk_bytes} * (layout_.chunk_count - 1));
  zscratch_.resize(compress_cap_);
  max_zero_entries_ = static_cast<std::uint16_t>(std::min<std::size_t>(
      kMaxEntries, (layout_.datagram_bytes - kDatagramHeaderBytes - kDatagramTagBytes) / kEntryBytes));
  // Enough slots for ~1 MiB of datagrams, at least 8.
  const std::size_t n = std::clamp<std::size_t>((1u << 20) / layout_.datagram_bytes, 8, 1024);
  slots_.resize(n);
  for (auto& s : slots_) {
    s.buf.resize(kPayloadAt + layout_.datagram_bytes + kDatagramTagBytes);
    s.entries.reserve(kMaxEntries);
  }
  out_.resize(n);
  if (layout_.chunked()) {
    // A record takes chunk_count slots, so the slots run out before the bodies do.
    body_stride_ = (page_record_body_bytes(layout_) + 63) / 64 * 64;
    record_bodies_.resize((n / layout_.chunk_count + 1) * body_stride_);
  }
}

DatagramStreamer::Slot& DatagramStreamer::open_slot() {
  Slot& s = slots_[used_];
  s.entries.clear();
  s.payload = 0;
  return s;
}

std::size_t DatagramStreamer::try_compress(const std::byte* data) {
  if (!governor_.should_try()) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = compressor_.compress({data, layout_.page_size}, {zscratch_.data(), compress_cap_});
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  governor_.on_attempt(n, dt);
  return n;
}

DatagramStreamer::PageCopy DatagramStreamer::inspect(std::uint64_t page, const std::byte* copy) {
  PageCopy c;
  c.hash = hash_page(copy, layout_.page_size);
  c.zero = c.hash == zero_hash_ && is_zero_page(copy, layout_.page_size);
  c.compressed = c.zero ? 0 : try_compress(copy);
  sent_hashes_[page] = c.hash;
  result_.zero_pages += c.zero;
  return c;
}

DatagramStreamer::Slot& DatagramStreamer::slot_with_room(int& open, std::uint32_t round, std::size_t max_entries,
                                                         std::size_t bytes) {
  if (open >= 0) {
    Slot& s = slots_[open];
    const std::size_t size_after =
        kDatagramHeaderBytes + (s.entries.size() + 1) * kEntryBytes + s.payload + bytes + kDatagramTagBytes;
    if (s.entries.size() >= max_entries || size_after > layout_.datagram_bytes) {
      // slots_[open] is always slots_[used_] while open: seal moves used_ past it.
      seal(s, round, 0, 1);
      open = -1;
    }
  }
  if (open < 0) {
    open_slot();
    open = static_cast<int>(used_);
  }
  return slots_[open];
}

// A compressed page (in zscratch_) into a slot that has room for it.
void DatagramStreamer::add_packed(Slot& s, std::uint64_t page, std::uint64_t hash, std::size_t compressed) {
  std::memcpy(s.payload_end(), zscratch_.data(), compressed);
  s.payload += compressed;
  DatagramEntry e{page, false, hash};
  e.compressed = static_cast<std::uint16_t>(compressed);
  s.entries.push_back(e);
  compressed_pages_.fetch_add(1, std::memory_order_relaxed);
  compressed_bytes_.fetch_add(compressed, std::memory_order_relaxed);
}

void DatagramStreamer::seal(Slot& s, std::uint32_t round, std::uint16_t chunk_index, std::uint16_t chunk_count) {
  DatagramHeader h;
  h.flags = protection_ == DatagramProtection::aead ? kDatagramEncrypted : 0;
  h.session = session_;
  h.lane = lane_;
  h.seq = add_single_writer(next_seq_, 1);
  h.send_time_ns = monotonic_ns();
  h.round = round;
  h.chunk_index = chunk_index;
  h.chunk_count = chunk_count;
  h.payload_bytes = static_cast<std::uint32_t>(s.payload);
  std::byte* const start = s.buf.data() + kPayloadAt - (kDatagramHeaderBytes + s.entries.size() * kEntryBytes);
  const std::size_t head_len = encode_datagram_head(start, h, s.entries);
  AeadCipher& c = keys_.for_seq(h.seq);
  c.begin(h.seq, std::span<const std::byte>(start, kDatagramHeaderBytes));
  // Entries and payload are contiguous: one pass, in place.
  const std::span<std::byte> sealed(start + kDatagramHeaderBytes, head_len - kDatagramHeaderBytes + s.payload);
  if (protection_ == DatagramProtection::aead)
    c.crypt(sealed, sealed.data());
  else
    c.authenticate(sealed);
  const AeadTag tag = c.finish_seal();
  std::memcpy(s.payload_end(), tag.data(), tag.size());
  queue_sealed(s, start, head_len + s.payload + kDatagramTagBytes);
}

void DatagramStreamer::queue_sealed(Slot& s, const std::byte* start, std::size_t bytes) {
  s.parts[0] = ConstBuffer{start, bytes};
  queue_parts(s, 1, bytes);
}

void DatagramStreamer::queue_parts(Slot& s, std::size_t count, std::size_t bytes) {
  out_[used_] = OutDatagram{std::span<const ConstBuffer>(s.parts.data(), count), bytes};
  add_single_writer(bytes_sealed_, bytes);
  batch_bytes_ += bytes;
  ++used_;
}

void DatagramStreamer::add_page(std::uint64_t page, std::uint32_t round, bool known_zero) {
  const std::byte* const data = image_.data() + page * layout_.page_size;
  ++batch_pages_;
  if (known_zero) {  // a hole of the image's file: an entry, nothing read
    sent_hashes_[page] = zero_hash_;
    ++result_.zero_pages;
    Slot& s = layout_.chunked() ? slot_with_room(open_zero_, round, max_zero_entries_, 0)
                                : slot_with_room(open_whole_, round, kMaxEntries, 0);
    s.entries.push_back({page, true, zero_hash_});
    return;
  }

  if (!layout_.chunked()) {
    // Whole pages: the page is copied straight to its place in the open datagram, which is
    // sealed first if a whole page would not fit (a zero or compressed one then takes less).
    Slot& s = slot_with_room(open_whole_, round, kMaxEntries, layout_.page_size);
    std::byte* const copy = s.payload_end();
    copy_guest_page(copy, data, layout_.page_size);
    const PageCopy c = inspect(page, copy);
    if (c.compressed) {
      add_packed(s, page, c.hash, c.compressed);
    } else {
      s.entries.push_back({page, c.zero, c.hash});
      if (!c.zero) s.payload += layout_.page_size;
    }
    return;
  }

  // Into the next record body, where its record is sealed if it goes as one (else it was scratch).
  std::byte* const copy = record_bodies_.data() + bodies_used_ * body_stride_ + kPageRecordPageAt;
  copy_guest_page(copy, data, layout_.page_size);
  const PageCopy c = inspect(page, copy);
  const std::size_t room = layout_.datagram_bytes - kDatagramHeaderBytes - kEntryBytes - kDatagramTagBytes;
  if (c.zero || (c.compressed && c.compressed <= room)) {
    // Chunked mode: zero pages travel as entries only and compressed ones that fit a datagram
    // whole, many per datagram.
    Slot& s = slot_with_room(open_zero_, round, max_zero_entries_, c.compressed);
    if (c.compressed)
      add_packed(s, page, c.hash, c.compressed);
    else
      s.entries.push_back({page, true, c.hash});
    return;
  }
  // A page larger than a datagram: one datagram per chunk. An open zero slot is sealed first so
  // the slots stay in order (slot index == used_ while open).
  if (open_zero_ >= 0) {
    seal(slots_[open_zero_], round, 0, 1);
    open_zero_ = -1;
  }
  if (c.compressed) {
    // Compressed, but larger than a datagram: its chunks (at least one fewer than the page's).
    const auto n = static_cast<std::uint16_t>((c.compressed + layout_.chunk_bytes - 1) / layout_.chunk_bytes);
    for (std::uint16_t i = 0; i < n; ++i) {
      Slot& s = open_slot();
      DatagramEntry e{page, false, c.hash};
      e.compressed = static_cast<std::uint16_t>(c.compressed);
      s.entries.push_back(e);
      const std::size_t at = std::size_t{i} * layout_.chunk_bytes;
      s.payload = std::min<std::size_t>(layout_.chunk_bytes, c.compressed - at);
      std::memcpy(s.buf.data() + kPayloadAt, zscratch_.data() + at, s.payload);
      seal(s, round, i, n);
    }
    compressed_pages_.fetch_add(1, std::memory_order_relaxed);
    compressed_bytes_.fetch_add(c.compressed, std::memory_order_relaxed);
    return;
  }
  seal_record(page, c.hash, round);
}

void DatagramStreamer::seal_record(std::uint64_t page, std::uint64_t hash, std::uint32_t round) {
  // One record over the page's chunk datagrams (send_round() left a slot for each): sealed in its
  // body in one pass, each chunk gathered from its head (in its slot) and a slice of the body.
  const std::uint16_t n = layout_.chunk_count;
  const std::size_t bytes = page_record_datagram_bytes(layout_);
  std::byte* const body = record_bodies_.data() + bodies_used_++ * body_stride_;
  std::array<std::byte*, kMaxChunks> heads{};
  for (std::uint16_t i = 0; i < n; ++i) heads[i] = slots_[used_ + i].buf.data();
  DatagramHeader first;
  first.session = session_;
  first.lane = lane_;
  first.seq = add_single_writer(next_seq_, n);
  first.send_time_ns = monotonic_ns();
  first.round = round;
  seal_page_record(keys_.for_seq(first.seq), protection_, layout_, first, DatagramEntry{page, false, hash}, body,
                   std::span<std::byte* const>(heads.data(), n));
  for (std::uint16_t i = 0; i < n; ++i) {
    Slot& s = slots_[used_];
    queue_parts(s, page_record_chunk_parts(layout_, body, heads[i], i, s.parts), bytes);
  }
}

void DatagramStreamer::flush(const std::function<double()>& rate, const std::function<void()>& between_batches) {
  if (used_ == 0) return;
  const double r = rate();
  bucket_.set_rate(r);
  ch_.pace(r);
  bucket_.acquire(batch_bytes_);
  std::span<const OutDatagram> pending(out_.data(), used_);
  auto stalled_since = std::chrono::steady_clock::now();
  while (!pending.empty()) {
    const std::size_t n = ch_.send_batch(pending);
    if (n == 0) {
      if (std::chrono::steady_clock::now() - stalled_since > stall_timeout_)
        throw Error(ErrorKind::timeout, "the datagram channel accepted nothing for " +
                                            std::to_string(stall_timeout_.count()) + " ms");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      continue;
    }
    stalled_since = std::chrono::steady_clock::now();
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += pending[i].bytes;
    bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
    datagrams_sent_.fetch_add(n, std::memory_order_relaxed);
    pending = pending.subspan(n);
  }
  used_ = 0;
  bodies_used_ = 0;
  batch_bytes_ = 0;
  // The lane's own work for the batch (zstd included): the CPU time of building it and handing it
  // to the kernel. The waits are what a slower link costs, not work: the pacer's, and a kernel
  // that holds the send because the link behind it is full (a tc shaper, a 1 Gbit/s NIC: the
  // socket blocks or refuses). Wall time counted that second wait as work, so a lane held by the
  // kernel looked busy and zstd was never tried where it pays most.
  const auto sent = std::chrono::steady_clock::now();
  const double busy = thread_cpu_seconds() - batch_start_cpu_;
  governor_.on_batch(batch_pages_, busy, std::chrono::duration<double>(sent - batch_start_).count());
  between_batches();
  start_batch(r);
}

// A batch holds about a millisecond of the rate; its clocks start here (wall and the lane's CPU).
void DatagramStreamer::start_batch(double rate) {
  batch_pages_ = 0;
  batch_limit_ = std::clamp<std::size_t>(static_cast<std::size_t>(rate / 1000), layout_.datagram_bytes, 1u << 20);
  batch_start_ = std::chrono::steady_clock::now();
  batch_start_cpu_ = thread_cpu_seconds();
}

DatagramStreamer::RoundResult DatagramStreamer::send_round(std::uint32_t round, const Bitmap& pages,
                                                           const Bitmap& known_zero,
                                                           const std::function<double()>& rate,
                                                           const std::function<void()>& between_batches) {
  result_ = {};
  // The pacer sleeps between batches: a tight timer (10 us, not the default 50) keeps its bursts
  // near the 1 ms it plans. Per thread: this is the lane's.
  prctl(PR_SET_TIMERSLACK, 10'000UL);
  start_batch(rate());
  // Room for one more page's datagrams must remain before a page is added.
  const std::size_t per_page = layout_.chunked() ? layout_.chunk_count + 1 : 1;
  pages.for_each_set([&](std::uint64_t p) {
    if (used_ + per_page + 1 > slots_.size() || batch_bytes_ >= batch_limit_) {
      // Seal what is open so the batch holds only complete datagrams.
      if (open_whole_ >= 0) {
        seal(slots_[open_whole_], round, 0, 1);
        open_whole_ = -1;
      }
      if (open_zero_ >= 0) {
        seal(slots_[open_zero_], round, 0, 1);
        open_zero_ = -1;
      }
      flush(rate, between_batches);
    }
    add_page(p, round, known_zero.test(p));
  });
  if (open_whole_ >= 0) seal(slots_[open_whole_], round, 0, 1);
  if (open_zero_ >= 0) seal(slots_[open_zero_], round, 0, 1);
  open_whole_ = open_zero_ = -1;
  flush(rate, between_batches);
  return result_;
}

}  // namespace hymig
