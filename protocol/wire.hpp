// The hymig wire protocol, version 4 (docs/protocol.md is the prose version of this file,
// docs/security.md the reasoning behind its protection).
//
// Reliable channel: messages of a type byte and a body; the backend frames them, and after the
// handshake every message is sealed (protocol/sealed_channel.hpp). Handshake bodies (hello,
// notify, ready) are JSON because they carry extensible capability sets and are sent once;
// everything else is a fixed little-endian layout. Every decoder validates every field and throws
// Error{protocol} naming the field.
//
// Datagram channel: one datagram = 48-byte header + entry_count entries (page index, page hash) +
// payload + 16-byte AES-GCM tag; the header is the associated data, entries and payload are
// encrypted (or, with --encrypt off, authenticated only): an observer learns neither which pages
// move nor their hashes. Whole-page datagrams carry several
// pages; on paths whose MTU is below a page, a page is cut into chunk_count chunks, one per
// datagram. Decoding a datagram never throws (a flood of junk must be cheap to drop): it returns a
// DropReason. Authentication is the receiver's (engine/page_applier.hpp), before any state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/bitmap.hpp"
#include "protocol/page_hash.hpp"
#include "security/aead.hpp"
#include "transport/transport_kind.hpp"

namespace hymig {

inline constexpr std::uint32_t kProtocolVersion = 5;

enum class MsgType : std::uint8_t {
  hello = 1,
  // 2 was auth (the HMAC challenge of version 1); the TLS handshake replaced it.
  notify = 3,
  ready = 4,
  abort = 5,
  progress = 6,
  round_begin = 7,
  round_end = 8,
  round_report = 9,
  pause = 10,
  missing = 11,
  pages = 12,
  final_end = 13,
  digest = 14,
  verify = 15,
  commit = 16,
  committed = 17,
  device_state = 18,         // S->D: a piece of the device state (a VM's), after verify
  device_state_end = 19,     // S->D: its length and digest
  device_state_loaded = 20,  // D->S: the destination applied it (its QEMU loaded it, still paused)
  image_window = 21,         // D->S: where the source may RDMA-WRITE the final delta (before missing)
  written = 22,              // S->D: final-delta pages written (sealed) into that window, with their tags
  bind = 23,                 // both, first on a moved (RC) channel: D->S a fresh challenge, S->D it echoed
  datagrams_done = 24,       // S->D after final datagram rounds: no datagram counts from now on; D->S: understood
  query = 25,                // S->D in place of notify: a question for the daemon (no migration follows)
  answer = 26,               // D->S: the answer to query; then the daemon closes the session
};
const char* to_string(MsgType t);
inline std::uint8_t wire(MsgType t) { return static_cast<std::uint8_t>(t); }

// ---- handshake (JSON bodies) -------------------------------------------------------------------

// Sent inside the sealed channel, after both sides proved the cluster key.
struct Hello {
  std::uint32_t version = kProtocolVersion;
  std::string role;      // "source" | "destination"
  std::string software;  // "hymig 0.2.0"
};
std::vector<std::byte> encode_hello(const Hello& h, const nlohmann::json& caps);
Hello decode_hello(std::span<const std::byte> body, nlohmann::json& caps_out);

// Image names travel in notify and become file names in the store (as .NAME.SESSION.part first):
// letters, digits and . _ - +, not starting with '.', short enough for NAME_MAX with the suffix.
inline constexpr std::size_t kMaxImageNameBytes = 200;
bool is_safe_image_name(std::string_view name);

// Text from a peer (abort reasons, names) must be printable: no C0/C1 controls, no bidirectional
// formatting characters, valid UTF-8. printable() makes any text safe to log (at most `max` bytes).
bool is_printable_text(std::string_view s);
std::string printable(std::string_view s, std::size_t max = 512);

// JSON bodies nest at most this deep (a capability set needs 3); deeper input is refused while
// it is parsed, before any structure is built.
inline constexpr int kMaxJsonDepth = 8;

// How datagrams are protected (notify's datagram_protection): "aead" encrypts and authenticates,
// "mac" authenticates only (--encrypt off: to measure what encryption costs).
enum class DatagramProtection : std::uint8_t { aead = 1, mac = 0 };

// How the two sides check the image at the end: full (both rehash the whole image, keyed) or fast
// (a keyed digest of the page hashes sent). How the final delta travels: pages messages, or
// one-sided writes into the target image where the reliable channel has them (RDMA RC).
enum class VerifyMode { full, fast };
enum class FinalDeltaMethod { send, write };

// The names notify gives them on the wire (and reports and messages show): "udp", "tcp", "ud";
// "tcp", "rc"; "full", "fast"; "send", "write".
std::string_view wire_name(BulkTransport t);
std::string_view wire_name(ReliableTransport t);
std::string_view wire_name(VerifyMode v);
std::string_view wire_name(FinalDeltaMethod f);

struct Notify {
  std::uint64_t session = 0;
  std::uint64_t image_bytes = 0;
  std::uint32_t page_size = 0;
  std::uint64_t page_count = 0;
  std::string image_kind;     // "synthetic" | "file" | "vm"
  std::string image_name;     // a plain file name, no '/'
  BulkTransport bulk = BulkTransport::udp;
  // Datagram lanes (1..kMaxLanes): each its own channel and thread on both sides, the pages split
  // among them (lane_of_page). One endpoint of the source's per lane; none for tcp.
  std::uint32_t lanes = 1;
  std::vector<std::string> bulk_endpoints;
  std::uint32_t datagram_bytes = 0;
  VerifyMode verify = VerifyMode::full;
  // tcp: the session stays on this connection; rdma_rc: it moves to RDMA RC after ready.
  ReliableTransport reliable = ReliableTransport::tcp;
  std::string vm_definition;     // a VM image's hypervisor definition (see SourceImage::vm_definition), or ""
  // write: the source would send the final delta by one-sided writes into the target image
  // (ImageWriter) if the destination exposes it (image-window); send: pages messages.
  FinalDeltaMethod final_delta = FinalDeltaMethod::send;
  DatagramProtection protection = DatagramProtection::aead;
  // Datagrams may carry zstd-compressed pages ("page_compression": "zstd"); the destination
  // refuses compressed entries otherwise.
  bool compressed_pages = false;
};
std::vector<std::byte> encode_notify(const Notify& n);
Notify decode_notify(std::span<const std::byte> body);

struct Ready {
  std::vector<std::string> bulk_endpoints;  // the destination's datagram endpoint per lane (none for tcp)
  std::uint32_t datagram_bytes = 0;
  std::string reliable_endpoint;  // where the source connects the RC channel ("" unless notify said rc)
};
std::vector<std::byte> encode_ready(const Ready& r);
Ready decode_ready(std::span<const std::byte> body);

// query: what a client (`hymig status`, `hymig drain`) asks a daemon, by name; the answer is a JSON
// object whose shape the query defines (docs/protocol.md, "Queries").
inline constexpr std::size_t kMaxQueryBytes = 4096;
std::vector<std::byte> encode_query(const std::string& what, const nlohmann::json& args);
// Fills `args` (an object, possibly empty); the name must be one of `known`.
std::string decode_query(std::span<const std::byte> body, nlohmann::json& args, std::initializer_list<std::string_view> known);
std::vector<std::byte> encode_answer(const nlohmann::json& answer);
nlohmann::json decode_answer(std::span<const std::byte> body);

std::vector<std::byte> encode_abort(const std::string& reason);
std::string decode_abort(std::span<const std::byte> body);

// ---- binary control messages -------------------------------------------------------------------

// Receiver -> sender, every ~10 ms during rounds: cumulative counters, so a lost report loses nothing.
// With several lanes, each counter is the sum over the lanes (next_seq too: the sum of every lane's
// highest sequence number seen + 1, whose growth is the datagrams the lanes saw go by).
struct Progress {
  std::uint64_t receiver_time_ns = 0;  // receiver's monotonic clock
  std::uint64_t datagrams =
      0;  // datagrams received so far (all rounds): authentic, or chunks of given-up records (PageApplier)
  std::uint64_t bytes = 0;             // their bytes
  std::uint64_t next_seq = 0;          // highest sequence number seen + 1
  std::int64_t min_owd_ns = 0;         // smallest (receiver clock - sender stamp) since last report
  std::uint64_t invalid = 0;           // datagrams dropped as invalid so far
  std::uint64_t backlog_bytes = 0;     // now waiting in the receiver's buffers (not cumulative)
  // The send stamp of the newest datagram seen and how long ago it arrived: the source takes
  // (now - stamp - hold) as the round trip a datagram and this report made (0: none yet).
  std::uint64_t echo_send_time_ns = 0;
  std::uint64_t echo_hold_ns = 0;
};
std::vector<std::byte> encode_progress(const Progress& p);
Progress decode_progress(std::span<const std::byte> body);

// round-begin names the round's page set: the receiver must know which pages a round resends, so
// that a page whose newer copy is lost is reported missing, not kept stale. It also names the pages
// of the set the source knows are zero right now (its file's holes; sent as zero entries): a hint,
// so that the receiver populates its target ahead of the stream only where data will land.
struct RoundBegin {
  std::uint32_t round = 0;
  Bitmap pages;
  Bitmap known_zero;  // a subset of pages; empty (all clear) when the source knows none
};
std::vector<std::byte> encode_round_begin(std::uint32_t round, const Bitmap& pages, const Bitmap& known_zero);
// Validates both sets against page_count and that known_zero lies within pages.
RoundBegin decode_round_begin(std::span<const std::byte> body, std::uint64_t page_count);

struct RoundEnd {
  std::uint32_t round = 0;
  std::uint64_t next_seq = 0;  // the sum over the lanes of the sequence number each lane's next datagram would carry
};
std::vector<std::byte> encode_round_end(const RoundEnd& r);
RoundEnd decode_round_end(std::span<const std::byte> body);

// A set of pages: a raw bitmap or a list of runs, whichever is smaller.
std::vector<std::byte> encode_page_set(std::uint32_t round, const Bitmap& set);
// Validates every index against page_count; returns the round and fills `out` (sized page_count).
std::uint32_t decode_page_set(std::span<const std::byte> body, std::uint64_t page_count, Bitmap& out);

// Header of a pages message; its payload is count pages, in the order of the indices.
inline constexpr std::uint32_t kMaxPagesPerMessage = 256;
// The round number the source puts on the final delta's pages: newer than any bulk round.
inline constexpr std::uint32_t kFinalRound = 0xfffffff0u;
std::vector<std::byte> encode_pages_header(std::uint32_t round, std::span<const std::uint64_t> pages);
// Validates count (1..kMaxPagesPerMessage), indices < page_count, and no duplicates next to each
// other is NOT required (a duplicate just writes the same page twice).
std::uint32_t decode_pages_header(std::span<const std::byte> body, std::uint64_t page_count,
                                  std::vector<std::uint64_t>& pages_out);

// image-window: the target image registered for the source's one-sided writes.
struct ImageWindow {
  std::uint64_t address = 0;
  std::uint32_t key = 0;
  std::uint64_t bytes = 0;
};
std::vector<std::byte> encode_image_window(const ImageWindow& w);
ImageWindow decode_image_window(std::span<const std::byte> body);

// bind: proves a new (RDMA RC) connection belongs to the session. The destination sends a random
// challenge sealed under the session's "rc" keys; the source answers with the session id and the
// challenge. Only a holder of the session's keys can do either, and a recorded answer does not
// fit a fresh challenge.
struct Bind {
  std::uint64_t session = 0;
  std::array<std::uint8_t, 32> challenge{};
};
std::vector<std::byte> encode_bind(const Bind& b);
Bind decode_bind(std::span<const std::byte> body);

// written: the final-delta pages the source wrote (sealed) into the image window, and each one's
// AES-GCM tag: u32 round (final), u32 count (1..kMaxPagesPerMessage), count x u64 page index,
// count x 16-byte tag.
std::vector<std::byte> encode_written(std::uint32_t round, std::span<const std::uint64_t> pages,
                                      std::span<const AeadTag> tags);
std::uint32_t decode_written(std::span<const std::byte> body, std::uint64_t page_count, std::vector<std::uint64_t>& pages_out,
                             std::vector<AeadTag>& tags_out);

std::vector<std::byte> encode_u64(std::uint64_t v);
std::uint64_t decode_u64(std::span<const std::byte> body, const char* what);

struct Verify {
  bool ok = false;
  Digest digest{};
  std::uint64_t missing_pages = 0;  // pages the receiver never got (must be 0 to commit)
};
std::vector<std::byte> encode_digest(const Digest& d);
Digest decode_digest(std::span<const std::byte> body);
std::vector<std::byte> encode_verify(const Verify& v);
Verify decode_verify(std::span<const std::byte> body);

// The device state (a VM's: QEMU's migration stream with its RAM left out) travels after verify as
// device-state messages: body = u64 offset of the piece in the stream, payload = the piece
// (1..kMaxDeviceStatePiece bytes, in order, no gaps); then device-state-end.
inline constexpr std::size_t kMaxDeviceStatePiece = 256 * 1024;
std::vector<std::byte> encode_device_state_header(std::uint64_t offset);
std::uint64_t decode_device_state_header(std::span<const std::byte> body);

struct DeviceStateEnd {
  std::uint64_t bytes = 0;  // the whole stream's length
  Digest digest{};          // XXH3-128 of the whole stream (StreamDigest)
};
std::vector<std::byte> encode_device_state_end(const DeviceStateEnd& e);
DeviceStateEnd decode_device_state_end(std::span<const std::byte> body);

// XXH3-128 over a stream fed in pieces: device-state-end's digest.
class StreamDigest {
 public:
  StreamDigest();
  ~StreamDigest();
  StreamDigest(const StreamDigest&) = delete;
  StreamDigest& operator=(const StreamDigest&) = delete;
  void update(std::span<const std::byte> bytes);
  Digest digest() const;

 private:
  void* state_;  // XXH3_state_t
};

// ---- datagrams ---------------------------------------------------------------------------------

inline constexpr std::uint32_t kDatagramMagic = 0x444D5948;  // "HYMD"
inline constexpr std::size_t kDatagramHeaderBytes = 48;
inline constexpr std::size_t kEntryBytes = 16;
inline constexpr std::size_t kDatagramTagBytes = 16;  // AES-GCM tag at the end of every datagram
inline constexpr std::uint16_t kMaxEntries = 64;
inline constexpr std::uint16_t kMaxChunks = 64;
// An entry's first word: bit 63 zero page, bit 62 compressed page, bits 48..61 the compressed
// length, bits 0..47 the page index (a notify's page_count is at most 2^40).
inline constexpr std::uint64_t kZeroPageFlag = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kCompressedPageFlag = std::uint64_t{1} << 62;
inline constexpr unsigned kCompressedLengthShift = 48;
inline constexpr std::uint64_t kCompressedLengthMask = (std::uint64_t{1} << 14) - 1;
inline constexpr std::uint64_t kPageIndexMask = (std::uint64_t{1} << 48) - 1;

// Lanes: pages go to lanes in blocks of kLaneBlockPages (a multiple of 64, so no two lanes share
// a word of a page bitmap).
inline constexpr std::uint32_t kMaxLanes = 16;
inline constexpr std::uint64_t kLaneBlockPages = 256;
inline std::uint32_t lane_of_page(std::uint64_t page, std::uint32_t lanes) {
  return static_cast<std::uint32_t>((page / kLaneBlockPages) % lanes);
}
inline constexpr std::uint8_t kDatagramEncrypted = 1;  // header flag: the payload is encrypted
// Header flag: a raw chunk, part of its page's one record (protocol/page_record.hpp).
inline constexpr std::uint8_t kDatagramPageRecord = 2;

struct DatagramHeader {
  std::uint8_t flags = 0;  // kDatagramEncrypted or 0, | kDatagramPageRecord on raw chunks
  std::uint16_t entry_count = 0;
  std::uint64_t session = 0;
  std::uint64_t seq = 0;          // the record number of the AEAD nonce: once per (lane, key)
  std::uint64_t send_time_ns = 0;
  std::uint32_t round = 0;
  std::uint16_t chunk_index = 0;
  std::uint16_t chunk_count = 1;  // 1 = whole pages
  std::uint32_t payload_bytes = 0;  // without the tag
  std::uint32_t lane = 0;          // the lane (its channel, its keys and numbers)
};

struct DatagramEntry {
  std::uint64_t page = 0;
  bool zero = false;
  std::uint64_t hash = 0;
  std::uint16_t compressed = 0;  // the compressed length of the page's bytes; 0: whole page (or zero)
  bool reserved_bits = false;    // decoded only: bits that must be 0 were not
  // Payload bytes the entry takes in a whole-page datagram.
  std::size_t payload_bytes(std::size_t page_size) const { return zero ? 0 : compressed ? compressed : page_size; }
};

// How pages are cut for a given datagram size (tag included).
struct DatagramLayout {
  std::size_t page_size = 0;
  std::size_t datagram_bytes = 0;
  std::uint16_t pages_per_datagram = 0;  // >= 1 in whole-page mode, 0 in chunked mode
  std::uint16_t chunk_count = 1;         // > 1 in chunked mode
  std::uint32_t chunk_bytes = 0;         // every chunk but the last; the last has the remainder

  bool chunked() const { return chunk_count > 1; }
  std::uint32_t chunk_len(std::uint16_t index) const {
    return index + 1 < chunk_count ? chunk_bytes
                                   : static_cast<std::uint32_t>(page_size - std::size_t{chunk_bytes} * (chunk_count - 1));
  }
  // A page's raw chunks all travel as chunk_bytes of payload: the last is followed by this many
  // zero bytes (fewer than chunk_count). Every chunk datagram then has one size, so a GSO run
  // spans many pages instead of ending at each page's shorter last chunk.
  std::uint32_t chunk_padding(std::uint16_t index) const { return chunk_bytes - chunk_len(index); }
};
// Throws Error{usage} when no layout fits (datagram too small for even one chunk).
DatagramLayout make_layout(std::size_t page_size, std::size_t datagram_bytes);

// Writes header + entries (in clear) into `out` (at least kDatagramHeaderBytes +
// entries*kEntryBytes); the sealer then encrypts the entries in place. Returns the bytes written.
// No allocation.
std::size_t encode_datagram_head(std::byte* out, const DatagramHeader& h, std::span<const DatagramEntry> entries);

enum class DropReason : std::uint8_t {
  none = 0,
  too_short,
  bad_magic,
  bad_version,
  wrong_session,
  bad_shape,       // entry count, chunk fields, flags or payload length inconsistent
  out_of_range,    // page index >= page_count
  future_round,    // a round the source has not announced yet
  replayed,        // a sequence number already taken, or older than the replay window
  bad_mac,         // forged, tampered with, or not of this session: failed authentication
  stale_round,     // older than what the page already holds (counted by the receiver)
  bad_hash,        // --verify fast: an authentic page record does not hash as its entry says
  bad_compressed,  // an authentic compressed page that does not decompress to exactly one page
  broken_record,   // a chunk of a page record whose earlier chunks did not come first (lost with them)
  count_
};
const char* to_string(DropReason r);

struct DatagramView {
  DatagramHeader header;
  std::span<const std::byte> head;            // the 48-byte header: the associated data
  std::span<const std::byte> sealed_entries;  // the entries as they travel (encrypted, or clear with mac)
  const std::byte* entries = nullptr;         // the entries in clear (set by whoever opened them); entry_at()
  std::span<const std::byte> payload;         // encrypted (or clear, with protection mac) page bytes
  const std::byte* tag = nullptr;             // kDatagramTagBytes at the datagram's end
  DatagramEntry entry_at(std::size_t i) const;
};

// Validates magic, version, flags against `protection`, session, lane and the header's shape
// (against `layout`): everything the header says, before anything is decrypted or trusted.
DropReason decode_datagram(std::span<const std::byte> bytes, std::uint64_t session, std::uint32_t lane,
                           const DatagramLayout& layout, DatagramProtection protection, DatagramView& out);
// Then, with out.entries in clear: page ranges (and that each page is the lane's), zero and
// compressed flags (compressed only where `compressed_pages`, shorter than a page), and the
// payload's length against them.
DropReason check_datagram_entries(const DatagramView& v, std::uint64_t page_count, std::uint32_t lanes,
                                  const DatagramLayout& layout, bool compressed_pages = false);

}  // namespace hymig
