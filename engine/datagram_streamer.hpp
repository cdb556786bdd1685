// The source's hot path: cuts the pages of a round into datagrams in a reused arena, seals each
// (AES-GCM in place; with protection mac only authenticated), paces them and hands them to the
// channel in batches. Pages zstd shrinks go compressed where the lane's governor says it pays.
// No allocation and no system call per page.
//
// Each page is copied out of the image once, and its hash, zero test, compression and seal all
// read that copy: the guest keeps writing while a round is sent, and the hash recorded for dirty
// detection must be the hash of exactly the bytes that went (a page changed A -> B -> A between a
// hash and a later read of the image would otherwise leave B at the destination while the source
// believes it sent A).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/bitmap.hpp"
#include "engine/compression_governor.hpp"
#include "engine/pacer.hpp"
#include "protocol/page_compressor.hpp"
#include "protocol/page_record.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"
#include "transport/datagram_channel.hpp"

namespace hymig {

class DatagramStreamer {
 public:
  // `lane`: which lane this streamer feeds (its keys, its sequence numbers, the header's lane).
  DatagramStreamer(DatagramChannel& ch, const DatagramLayout& layout, std::uint64_t session,
                   std::span<const std::byte> image, std::span<std::uint64_t> sent_hashes,
                   std::chrono::milliseconds stall_timeout, DatagramProtection protection,
                   const SessionSecrets& secrets, std::uint32_t lane = 0,
                   Compression compression = Compression::off);

  struct RoundResult {
    std::uint64_t zero_pages = 0;  // bytes and datagrams: the difference of the running counters
  };

  // Sends every page in `pages` tagged with `round`, recording each page's hash in sent_hashes.
  // Pages set in `known_zero` (holes of the image's file, SourceImage::find_zero_pages) go as zero
  // entries without being read. `rate` gives the pacing rate (bytes/s) before each batch;
  // `between_batches` runs after each batch (the caller reads reports there) and may throw to stop
  // the round.
  RoundResult send_round(std::uint32_t round, const Bitmap& pages, const Bitmap& known_zero,
                         const std::function<double()>& rate, const std::function<void()>& between_batches);

  // Safe to read from another thread while a round is sent. next_seq() and bytes_sealed() count
  // datagrams made (each is sent before the next batch is made): what the receiver can have seen.
  std::uint64_t next_seq() const { return next_seq_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_sealed() const { return bytes_sealed_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }
  std::uint64_t datagrams_sent() const { return datagrams_sent_.load(std::memory_order_relaxed); }
  // Pages sent compressed, and their compressed bytes.
  std::uint64_t compressed_pages() const { return compressed_pages_.load(std::memory_order_relaxed); }
  std::uint64_t compressed_bytes() const { return compressed_bytes_.load(std::memory_order_relaxed); }
  const CompressionGovernor& governor() const { return governor_; }
  const DatagramLayout& layout() const { return layout_; }

 private:
  // The payload starts at a fixed offset, kPayloadAt, so pages are copied to their final place
  // before the datagram's entry count is known; seal() writes the header and entries right before
  // it and the tag right after: one contiguous datagram.
  static constexpr std::size_t kPayloadAt = kDatagramHeaderBytes + std::size_t{kMaxEntries} * kEntryBytes;
  struct Slot {
    std::vector<std::byte> buf;
    std::vector<DatagramEntry> entries;
    std::size_t payload = 0;
    // The datagram, once sealed: one piece of buf, or a page record's chunk gathered from its
    // head in buf and the record's body.
    std::array<ConstBuffer, kPageRecordMaxParts> parts{};
    std::byte* payload_end() { return buf.data() + kPayloadAt + payload; }
  };
  struct PageCopy {  // what add_page learnt from the copy of a page
    std::uint64_t hash = 0;
    bool zero = false;
    std::size_t compressed = 0;  // its compressed length in zscratch_, or 0
  };

  void add_page(std::uint64_t page, std::uint32_t round, bool known_zero);
  // Hashes, zero-tests and (when the governor says so) compresses the copy of `page` at `copy`.
  PageCopy inspect(std::uint64_t page, const std::byte* copy);
  // Compresses the page into zscratch_ when the governor says so; its length, or 0.
  std::size_t try_compress(const std::byte* data);
  // The open slot of whole pages (or of zero and compressed pages when chunked), sealing the one
  // open first when it has no room for one more entry and `bytes` of payload.
  Slot& slot_with_room(int& open, std::uint32_t round, std::size_t max_entries, std::size_t bytes);
  void add_packed(Slot& s, std::uint64_t page, std::uint64_t hash, std::size_t compressed);
  void seal(Slot& s, std::uint32_t round, std::uint16_t chunk_index, std::uint16_t chunk_count);
  // A sealed datagram of `bytes` at `start` (in s.buf) joins the batch.
  void queue_sealed(Slot& s, const std::byte* start, std::size_t bytes);
  // s.parts[0, count) (`bytes` in all) join the batch as one datagram.
  void queue_parts(Slot& s, std::size_t count, std::size_t bytes);
  // A raw page on a chunked path (its copy in the next record body): one record over its chunk
  // datagrams.
  void seal_record(std::uint64_t page, std::uint64_t hash, std::uint32_t round);
  Slot& open_slot();
  void flush(const std::function<double()>& rate, const std::function<void()>& between_batches);
  void start_batch(double rate);

  DatagramChannel& ch_;
  DatagramLayout layout_;
  std::uint64_t session_;
  std::span<const std::byte> image_;
  std::span<std::uint64_t> sent_hashes_;
  std::chrono::milliseconds stall_timeout_;
  std::uint64_t zero_hash_;
  std::uint16_t max_zero_entries_;
  DatagramProtection protection_;
  EpochKeys keys_;

  std::vector<Slot> slots_;
  std::vector<OutDatagram> out_;
  std::size_t used_ = 0;         // sealed slots waiting in the batch
  std::size_t batch_bytes_ = 0;  // their bytes
  std::size_t batch_limit_ = 0;  // flush at this many bytes (about 1 ms at the current rate)
  int open_whole_ = -1;          // slot collecting whole pages, or -1
  int open_zero_ = -1;           // slot collecting zero and compressed pages (chunked mode), or -1

  TokenBucket bucket_;
  std::uint32_t lane_;
  // next_seq_ and bytes_sealed_ move per datagram, by the lane's thread only (add_single_writer).
  std::atomic<std::uint64_t> next_seq_{0}, bytes_sealed_{0}, bytes_sent_{0}, datagrams_sent_{0};
  std::atomic<std::uint64_t> compressed_pages_{0}, compressed_bytes_{0};

  PageCompressor compressor_;
  CompressionGovernor governor_;
  std::vector<std::byte> zscratch_;    // one compressed page, before it goes into its slot
  // Chunked paths: the batch's page record bodies (protocol/page_record.hpp), each page copied
  // into the next one, which the page's record then keeps until the batch went.
  std::vector<std::byte> record_bodies_;
  std::size_t body_stride_ = 0;
  std::size_t bodies_used_ = 0;
  std::size_t compress_cap_ = 0;       // the most a compressed page may take here
  std::uint64_t batch_pages_ = 0;      // pages added since the last batch went
  std::chrono::steady_clock::time_point batch_start_{};
  double batch_start_cpu_ = 0;  // the lane thread's CPU seconds at batch_start_
  RoundResult result_;
};

}  // namespace hymig
