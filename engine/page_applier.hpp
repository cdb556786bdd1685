// The destination's hot path: authenticates each datagram, decrypts its pages straight into the
// target image and keeps the bookkeeping. Per page: the round it holds (an older round never
// overwrites a newer one: reordered or duplicated datagrams are harmless), the hash of what it
// holds (--verify fast only), and whether the page is complete ("present").
//
// Nothing a datagram says is trusted before its tag verified, and no state changes before then
// (its entries, which say where its pages go, travel encrypted and are opened first):
// a page's bytes are decrypted in place only where they are disposable anyway (the page is not
// present and no newer round wrote it); everything else goes through a scratch buffer and is
// copied once authentic. A compressed page is decrypted into the scratch and decompressed into its
// page once authentic; one that does not yield exactly a page leaves the page missing
// (bad-compressed), to be sent again. A forged datagram therefore costs one failed tag check and a
// bad-mac count, never a page.
//
// Chunked paths: a raw page is one record over its chunk datagrams (protocol/page_record.hpp).
// A chunk cannot be authenticated alone: a lane keeps a record's chunk datagrams as they came
// (ciphertext, in a bounded slot; kRecordSlots of them, so pages overtaking each other cost
// nothing) and opens the record in one pass once all are in — into the page where that is
// disposable, else into the lane's record scratch. The page lands, and the chunks' sequence
// numbers are marked, only once the tag verified. When a record begins and every slot is taken,
// the one added to least recently is given up: its page is missing, as if a chunk were lost
// (broken-record). Its chunks did arrive, though, and the pacer must read datagram loss, not page
// loss (a 3-chunk page is lost at 66 % when 30 % of datagrams are): a given-up record's chunks
// count as received when they lie within the sequence numbers authentic datagrams have reached,
// each number once (docs/security.md, "Page records", says what a forger can do with that).
//
// Lanes: each lane (its own channel and thread) has its own keys, replay window, scratch and
// counters, and owns the pages lane_of_page gives it — whole words of the page bitmaps — so lane
// threads may apply datagrams at the same time. Everything else (begin_round, note_pages_written,
// cut_off_rounds, present(), page_hashes()) needs the lanes held: the caller serializes them (the
// destination engine holds a shared lock per batch in each lane, an exclusive one for these).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/bitmap.hpp"
#include "core/buffer.hpp"
#include "protocol/page_compressor.hpp"
#include "protocol/wire.hpp"
#include "security/epoch_keys.hpp"
#include "security/replay_window.hpp"

namespace hymig {

class PageApplier {
 public:
  // keep_hashes: record the hash of every page received (--verify fast: the digest is taken from
  // page_hashes()); false when the digest will rehash the whole image anyway.
  // starts_zeroed: the image is all zeros before the session writes it (TargetImage::starts_zeroed),
  // so a zero page needs no write unless data was written there before.
  PageApplier(std::span<std::byte> image, std::size_t page_size, std::uint64_t session, const DatagramLayout& layout,
              DatagramProtection protection, const SessionSecrets& secrets, std::uint32_t lanes = 1,
              bool keep_hashes = true, bool starts_zeroed = false, bool compressed_pages = false);

  // Validates, authenticates and applies one datagram that arrived on `lane`. Returns the reason
  // it was dropped (none = applied). Never throws: a flood of junk costs one validation (and at
  // most one tag check) each. Lane threads may call it at once, each for its own lane.
  DropReason apply_datagram(std::uint32_t lane, std::span<const std::byte> bytes, std::uint64_t now_ns);
  // A receive batch, as apply_datagram each. A page record whose chunks all arrive within the
  // batch opens from the batch's own bytes; only the chunks of records still incomplete at its end
  // are copied (the batch's memory is the channel's again at the next receive).
  void apply_batch(std::uint32_t lane, std::span<const InDatagram> batch, std::uint64_t now_ns);

  // Pages that arrived over the reliable channel (already authenticated there) have been written
  // to their places in the image; record them (present, round, and the hash when kept).
  void note_pages_written(std::span<const std::uint64_t> pages, std::uint32_t round);

  // The source starts round r resending `pages`: what the destination holds of them is stale until
  // the round's copy arrives, so they count as missing (unless that copy already overtook this
  // announcement). Datagrams claiming a later round than announced are dropped.
  void begin_round(std::uint32_t r, const Bitmap& pages);

  // From now on datagrams of rounds before `round` are dropped (as stale) before they touch
  // anything: the source paused, and what it sends from here on supersedes them.
  void cut_off_rounds(std::uint32_t round);
  // Pages written by round `round` or later (datagrams, or the reliable channel's final delta).
  Bitmap written_since(std::uint32_t round) const;
  std::uint32_t announced_round() const { return announced_round_.load(std::memory_order_relaxed); }

  const Bitmap& present() const { return present_; }
  std::span<const std::uint64_t> page_hashes() const { return hashes_; }
  std::uint64_t page_count() const { return page_count_; }
  std::uint32_t lanes() const { return static_cast<std::uint32_t>(lanes_.size()); }
  std::span<std::byte> page(std::uint64_t p) { return image_.subspan(p * page_size_, page_size_); }

  // Counters for progress reports, summed over the lanes (authentic datagrams only); safe to read
  // while lanes apply.
  // Datagrams received (authentic ones, and the chunks of given-up records counted as above).
  std::uint64_t datagrams() const;
  std::uint64_t bytes() const;
  // Every datagram handed to apply_datagram, whatever became of it: changes while any arrive.
  std::uint64_t taken() const;
  // The sum of each lane's highest sequence number seen + 1. Read it before datagrams(): a lane
  // counts a datagram before it moves next_seq, so a report never shows a gap that a lane was
  // filling as it was read (the source would count it lost).
  std::uint64_t next_seq() const;
  std::uint64_t invalid() const;
  std::uint64_t dropped(DropReason r) const;
  // Every page below it has had its copy of the current stream land or pass, as far as the stream
  // is in increasing page order (round 0 is, on every lane): the least, over the lanes, of the
  // highest page + 1 each applied, or of the reliable channel's pages when that is further.
  std::uint64_t receive_frontier() const;
  // Smallest (receiver clock - sender stamp) since the last call; INT64_MAX if none.
  std::int64_t take_min_owd();
  // The send stamp of the newest authentic datagram and when it arrived (receiver clock); {0, 0}
  // before the first.
  std::pair<std::uint64_t, std::uint64_t> newest_stamp() const;

 private:
  // Four records of up to 5 chunks (RoCE MTU 1024) ride out a datagram overtaking ~15 others.
  static constexpr std::size_t kRecordSlots = 4;
  struct Lane {
    Lane(const SessionSecrets& secrets, std::uint32_t index, const DatagramLayout& layout);
    std::uint32_t index;
    EpochKeys keys;
    ReplayWindow window;
    std::vector<std::byte> scratch;
    std::array<std::byte, kMaxChunks> padding{};  // a raw chunk's padding, decrypted (zeros)
    std::array<std::byte, kMaxEntries * kEntryBytes> entries{};  // the current datagram's, decrypted
    std::array<std::byte*, kMaxEntries> opened{};                // where each payload piece was opened
    PageDecompressor zstd;
    // Page records being gathered (chunked paths): a record's chunk datagrams are kept as they
    // came (ciphertext, bounded: chunk_count datagrams each) until all are in, then opened in one
    // pass. Two, so that the next page's chunks overtaking this one's do not cost either page.
    struct RecordSlot {
      bool used = false;
      std::uint64_t first_seq = 0;  // the record's number: chunk 0's sequence number
      std::uint64_t mask = 0;       // chunks in
      std::uint64_t last_use = 0;   // record_clock when a chunk was last added
      std::uint64_t borrowed = 0;   // chunks still in the caller's batch, at chunk_at (apply_batch)
      std::vector<std::byte> datagrams;
      std::vector<const std::byte*> chunk_at;
      const std::byte* chunk(std::uint16_t i, std::size_t size) const {
        return (borrowed >> i & 1) ? chunk_at[i] : datagrams.data() + std::size_t{i} * size;
      }
    };
    std::array<RecordSlot, kRecordSlots> records;
    std::uint64_t record_clock = 0;
    std::uint64_t credit_from = 0;          // given-up chunks below this sequence number were counted already
    std::vector<std::byte> record_scratch;  // one page: where a record opens when its page is not disposable
    struct Staging {  // the compressed page whose chunks arrive (chunked paths)
      std::uint64_t page = ~std::uint64_t{0};
      std::uint32_t tag = 0;
      std::uint16_t length = 0;
      std::uint64_t mask = 0;
      std::vector<std::byte> bytes;
    } staging;
    // The counts move per datagram, written by the lane's receiving thread only (add_single_writer).
    std::atomic<std::uint64_t> datagrams{0}, bytes{0}, next_seq{0}, taken{0};
    std::atomic<std::uint64_t> frontier{0};  // the highest page applied + 1
    std::atomic<std::int64_t> min_owd{INT64_MAX};
    std::atomic<std::uint64_t> newest_stamp{0}, newest_arrival{0};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(DropReason::count_)> drops{};
  };

  // Where a payload piece is decrypted: its page (in place) or the lane's scratch buffer.
  bool may_write_page(std::uint64_t p, std::uint32_t tag) const;
  DropReason open_datagram(Lane& lane, DatagramView& v, std::uint32_t tag);
  DropReason apply_whole(Lane& lane, const DatagramView& v, std::uint32_t tag);
  DropReason apply_compressed_chunk(Lane& lane, const DatagramView& v, std::uint32_t tag);
  // A chunk of a page record (checked up to the replay window): kept until its record is whole,
  // then the record is opened. Counts what it drops.
  DropReason take_record_chunk(Lane& lane, const DatagramView& v, std::span<const std::byte> bytes,
                               std::uint64_t now_ns);
  DropReason open_record(Lane& lane, Lane::RecordSlot& slot, std::uint64_t now_ns);
  // The slot a chunk of record `first` goes to (giving one up if needed), or nullptr: drop it.
  Lane::RecordSlot* record_slot(Lane& lane, std::uint64_t first);
  // A record is given up: its chunks count as received where the authenticated range allows.
  void give_up_record(Lane& lane, Lane::RecordSlot& slot);
  // The end of a batch: borrowed chunks of incomplete records are copied into their slots.
  void keep_borrowed(Lane& lane);
  DropReason apply_one(Lane& lane, std::span<const std::byte> bytes, std::uint64_t now_ns);
  // The record verified: its page lands (from `opened`, the page itself or the lane's scratch).
  DropReason land_record(const DatagramEntry& entry, const std::byte* opened, std::uint32_t tag);
  // Counts `n` datagrams dropped for `r` on the lane; returns r.
  static DropReason count_drop(Lane& lane, DropReason r, std::uint64_t n = 1);
  // Page p was applied on the lane.
  static void advance_frontier(Lane& lane, std::uint64_t p) {
    if (p + 1 > lane.frontier.load(std::memory_order_relaxed)) lane.frontier.store(p + 1, std::memory_order_relaxed);
  }
  // An authentic datagram (or record) of `count` datagrams and `bytes` arrived: the lane's counters.
  void count_authentic(Lane& lane, const DatagramHeader& last, std::uint64_t count, std::uint64_t bytes,
                       std::uint64_t now_ns);

  std::span<std::byte> image_;
  std::size_t page_size_;
  std::uint64_t page_count_;
  std::uint64_t session_;
  DatagramLayout layout_;
  DatagramProtection protection_;
  bool compressed_pages_;
  std::atomic<std::uint32_t> announced_round_{0};
  std::atomic<std::uint32_t> min_round_{0};
  std::atomic<std::uint64_t> reliable_frontier_{0};  // note_pages_written's highest page + 1
  std::vector<std::unique_ptr<Lane>> lanes_;

  Bitmap present_;
  std::vector<std::uint32_t> round_tag_;   // round + 1 of what the page holds; 0 = nothing yet
  std::vector<std::uint64_t> hashes_;
  bool keep_hashes_;
  // Pages that may hold non-zero bytes. A zero page elsewhere is left alone: writing zeros into a
  // fresh VM RAM file would allocate every page of it (a 1 GiB guest is mostly zeros) and slow
  // the receiver so much that it dropped a third of round 0's datagrams.
  Bitmap maybe_nonzero_;
};

}  // namespace hymig
