#include "engine/datagram_streamer.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "protocol/page_hash.hpp"

namespace hymig {
namespace {
// The zeros a page's last raw chunk is padded with (fewer than kMaxChunks bytes).
constexpr std::array<std::byte, kMaxChunks> kChunkPadding{};
}  // namespace

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
    s.buf.resize(kDatagramHeaderBytes + kMaxEntries * kEntryBytes + layout_.datagram_bytes + kDatagramTagBytes);
    if (compression != Compression::off) s.zbuf.resize(layout_.datagram_bytes);
    s.entries.reserve(kMaxEntries);
    s.parts.reserve(kMaxEntries + 2);
  }
  out_.resize(n);
}

DatagramStreamer::Slot& DatagramStreamer::open_slot() {
  Slot& s = slots_[used_];
  s.entries.clear();
  s.parts.clear();
  s.parts.push_back({});  // the head, filled at seal()
  s.payload = 0;
  s.zused = 0;
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

// A compressed page into a slot that has room for it.
void DatagramStreamer::add_packed(Slot& s, std::uint64_t page, std::uint64_t hash, std::size_t compressed) {
  std::memcpy(s.zbuf.data() + s.zused, zscratch_.data(), compressed);
  s.parts.push_back({s.zbuf.data() + s.zused, compressed});
  s.zused += compressed;
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
  h.seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  h.send_time_ns = monotonic_ns();
  h.round = round;
  h.chunk_index = chunk_index;
  h.chunk_count = chunk_count;
  h.payload_bytes = static_cast<std::uint32_t>(s.payload);
  const std::size_t head_len = encode_datagram_head(s.buf.data(), h, s.entries);
  const std::span<const ConstBuffer> pieces = std::span<const ConstBuffer>(s.parts).subspan(1);
  AeadCipher& c = keys_.for_seq(h.seq);
  c.begin(h.seq, std::span<const std::byte>(s.buf.data(), kDatagramHeaderBytes));
  const std::span<std::byte> entries(s.buf.data() + kDatagramHeaderBytes, head_len - kDatagramHeaderBytes);
  const std::size_t bytes = head_len + s.payload + kDatagramTagBytes;
  if (protection_ == DatagramProtection::aead) {
    // The entries encrypted in place, the pages from the image into the arena right behind them:
    // one contiguous datagram.
    c.crypt(entries, entries.data());
    std::byte* out = s.buf.data() + head_len;
    for (const auto& piece : pieces) {
      c.crypt({piece.data, piece.size}, out);
      out += piece.size;
    }
    const AeadTag tag = c.finish_seal();
    std::memcpy(out, tag.data(), tag.size());
    s.parts.assign(1, ConstBuffer{s.buf.data(), bytes});
  } else {
    c.authenticate(entries);
    for (const auto& piece : pieces) c.authenticate({piece.data, piece.size});
    s.tag = c.finish_seal();
    s.parts[0] = {s.buf.data(), head_len};
    s.parts.push_back({s.tag.data(), s.tag.size()});
  }
  out_[used_] = OutDatagram{std::span<const ConstBuffer>(s.parts), bytes};
  bytes_sealed_.fetch_add(bytes, std::memory_order_relaxed);
  batch_bytes_ += bytes;
  ++used_;
}

void DatagramStreamer::add_page(std::uint64_t page, std::uint32_t round, bool known_zero) {
  const std::byte* data = image_.data() + page * layout_.page_size;
  const std::uint64_t h = known_zero ? zero_hash_ : hash_page(data, layout_.page_size);
  sent_hashes_[page] = h;
  const bool zero = known_zero || (h == zero_hash_ && is_zero_page(data, layout_.page_size));
  result_.zero_pages += zero;
  ++batch_pages_;
  const std::size_t compressed = zero ? 0 : try_compress(data);

  if (!layout_.chunked()) {
    // Whole pages: fill the open datagram until the next page would not fit.
    const std::size_t bytes = zero ? 0 : compressed ? compressed : layout_.page_size;
    if (open_whole_ >= 0) {
      Slot& s = slots_[open_whole_];
      const std::size_t size_after =
          kDatagramHeaderBytes + (s.entries.size() + 1) * kEntryBytes + s.payload + bytes + kDatagramTagBytes;
      if (s.entries.size() == kMaxEntries || size_after > layout_.datagram_bytes) {
        // slots_[open_whole_] is always slots_[used_] while open: seal moves used_ past it.
        seal(s, round, 0, 1);
        open_whole_ = -1;
      }
    }
    if (open_whole_ < 0) {
      open_slot();
      open_whole_ = static_cast<int>(used_);
    }
    Slot& s = slots_[open_whole_];
    if (compressed) {
      add_packed(s, page, h, compressed);
    } else {
      s.entries.push_back({page, zero, h});
      if (!zero) {
        s.parts.push_back({data, layout_.page_size});
        s.payload += layout_.page_size;
      }
    }
    return;
  }

  const std::size_t room = layout_.datagram_bytes - kDatagramHeaderBytes - kEntryBytes - kDatagramTagBytes;
  if (zero || (compressed && compressed <= room)) {
    // Chunked mode: zero pages travel as entries only and compressed ones that fit a datagram
    // whole, many per datagram.
    if (open_zero_ >= 0) {
      Slot& s = slots_[open_zero_];
      const std::size_t size_after =
          kDatagramHeaderBytes + (s.entries.size() + 1) * kEntryBytes + s.payload + compressed + kDatagramTagBytes;
      if (s.entries.size() >= max_zero_entries_ || size_after > layout_.datagram_bytes) {
        seal(s, round, 0, 1);
        open_zero_ = -1;
      }
    }
    if (open_zero_ < 0) {
      open_slot();
      open_zero_ = static_cast<int>(used_);
    }
    Slot& s = slots_[open_zero_];
    if (compressed) add_packed(s, page, h, compressed);
    else s.entries.push_back({page, true, h});
    return;
  }
  // A page larger than a datagram: one datagram per chunk. An open zero slot is sealed first so
  // the slots stay in order (slot index == used_ while open).
  if (open_zero_ >= 0) {
    seal(slots_[open_zero_], round, 0, 1);
    open_zero_ = -1;
  }
  if (compressed) {
    // Compressed, but larger than a datagram: its chunks (at least one fewer than the page's).
    const auto n = static_cast<std::uint16_t>((compressed + layout_.chunk_bytes - 1) / layout_.chunk_bytes);
    for (std::uint16_t c = 0; c < n; ++c) {
      Slot& s = open_slot();
      DatagramEntry e{page, false, h};
      e.compressed = static_cast<std::uint16_t>(compressed);
      s.entries.push_back(e);
      const std::size_t at = std::size_t{c} * layout_.chunk_bytes;
      const std::size_t len = std::min<std::size_t>(layout_.chunk_bytes, compressed - at);
      std::memcpy(s.zbuf.data(), zscratch_.data() + at, len);
      s.parts.push_back({s.zbuf.data(), len});
      s.payload = len;
      seal(s, round, c, n);
    }
    compressed_pages_.fetch_add(1, std::memory_order_relaxed);
    compressed_bytes_.fetch_add(compressed, std::memory_order_relaxed);
    return;
  }
  for (std::uint16_t c = 0; c < layout_.chunk_count; ++c) {
    Slot& s = open_slot();
    s.entries.push_back({page, false, h});
    const std::size_t len = layout_.chunk_len(c);
    s.parts.push_back({data + std::size_t{c} * layout_.chunk_bytes, len});
    if (const std::size_t pad = layout_.chunk_padding(c)) s.parts.push_back({kChunkPadding.data(), pad});
    s.payload = layout_.chunk_bytes;
    seal(s, round, c, layout_.chunk_count);  // send_round() left room for every chunk
  }
}

void DatagramStreamer::flush(const std::function<double()>& rate, const std::function<void()>& between_batches) {
  if (used_ == 0) return;
  const double r = rate();
  bucket_.set_rate(r);
  ch_.pace(r);
  const auto built = std::chrono::steady_clock::now();
  bucket_.acquire(batch_bytes_);
  const auto paced = std::chrono::steady_clock::now();
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
  batch_bytes_ = 0;
  batch_limit_ = std::clamp<std::size_t>(static_cast<std::size_t>(r / 1000), layout_.datagram_bytes, 1u << 20);
  // The lane's own work for the batch (zstd included): building it and handing it to the kernel;
  // the wait for the pacer is what a slower link costs, not work.
  const auto sent = std::chrono::steady_clock::now();
  const double busy = std::chrono::duration<double>((built - batch_start_) + (sent - paced)).count();
  governor_.on_batch(batch_pages_, busy, std::chrono::duration<double>(sent - batch_start_).count());
  batch_pages_ = 0;
  between_batches();
  batch_start_ = std::chrono::steady_clock::now();
}

DatagramStreamer::RoundResult DatagramStreamer::send_round(std::uint32_t round, const Bitmap& pages,
                                                           const Bitmap& known_zero,
                                                           const std::function<double()>& rate,
                                                           const std::function<void()>& between_batches) {
  result_ = {};
  // The pacer sleeps between batches: a tight timer (10 us, not the default 50) keeps its bursts
  // near the 1 ms it plans. Per thread: this is the lane's.
  prctl(PR_SET_TIMERSLACK, 10'000UL);
  batch_start_ = std::chrono::steady_clock::now();
  batch_pages_ = 0;
  batch_limit_ = std::clamp<std::size_t>(static_cast<std::size_t>(rate() / 1000), layout_.datagram_bytes, 1u << 20);
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
