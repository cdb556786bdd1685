// A page on a chunked path (a datagram smaller than a page: MTU 1500, RoCE MTU 1024) travels as
// ONE AEAD record cut into the page's chunk datagrams (protocol 4), not one record per chunk: the
// cipher's fixed cost per record (~600 ns here) was most of what MTU 1500 cost beyond
// `--bulk tcp` (docs/data-path.md, "One AEAD record per page").
//
// Chunk i of a record is [header][entry field][payload][tag field]. The record's nonce is chunk
// 0's sequence number, its associated data chunk 0's header; the stream it encrypts (or, with
// protection mac, authenticates) is chunk 0's entry ‖ payload 0 ‖ payload 1 ‖ ... The entry field
// of the other chunks and the tag field of all but the last are zeros (fixed bytes, so a receiver
// checks them as they come); the last chunk's tag field carries the tag. Chunk i's header is chunk
// 0's with sequence first + i and chunk index i (one send time per page), so every header is
// covered: a receiver takes a chunk into the record only if its header is exactly the one
// expected. Every chunk datagram has the same size, the last chunk's payload padded with zeros,
// so a GSO run spans many pages. Interleaving the entries into the stream instead cost a fifth
// more cipher time per page (seven update calls instead of four); the sender now makes one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/buffer.hpp"
#include "protocol/wire.hpp"
#include "security/aead.hpp"

namespace hymig {

// The bytes of every chunk datagram of a page record.
std::size_t page_record_datagram_bytes(const DatagramLayout& layout);

// The header chunk `index` of the record begun by `first` (chunk 0's header) must carry.
DatagramHeader page_record_chunk_header(const DatagramHeader& first, std::uint16_t index);

// The sender builds a record in one buffer, its body: the entry field, the page padded with zeros
// to chunk_count * chunk_bytes, and the tag field. The body is sealed in one cipher pass (one
// update call instead of one per chunk: a tenth less cipher time per page, docs/data-path.md), and
// each chunk datagram is gathered from its own head (header, and for chunks after the first the
// zero entry field) and a slice of the body, so the bytes on the wire are as described above.
inline constexpr std::size_t kPageRecordPageAt = kEntryBytes;  // where the page goes in a body
inline constexpr std::size_t kPageRecordHeadBytes = kDatagramHeaderBytes + kEntryBytes;
inline constexpr std::size_t kPageRecordMaxParts = 3;  // pieces one chunk datagram takes
std::size_t page_record_body_bytes(const DatagramLayout& layout);

// Seals, in place, the record whose page the caller put at body + kPageRecordPageAt: writes the
// entry, the padding and the tag into `body` (page_record_body_bytes), and chunk i's head at
// heads[i] (kPageRecordHeadBytes each). `first` gives session, lane, sequence number (chunks take
// first.seq .. first.seq + chunk_count - 1), send time and round; flags and the chunk fields are
// set here. `cipher` is the sealing cipher for first.seq.
void seal_page_record(AeadCipher& cipher, DatagramProtection protection, const DatagramLayout& layout,
                      DatagramHeader first, const DatagramEntry& entry, std::byte* body,
                      std::span<std::byte* const> heads);

// The pieces chunk `index` of a sealed record is gathered from, in order, into `parts`; returns
// how many (at most kPageRecordMaxParts). They add up to page_record_datagram_bytes.
std::size_t page_record_chunk_parts(const DatagramLayout& layout, const std::byte* body, const std::byte* head,
                                    std::uint16_t index, std::span<ConstBuffer, kPageRecordMaxParts> parts);

// Seals `page` as a record and writes its chunk datagrams out whole (page_record_datagram_bytes
// each): for what delivers records without a socket (tests, fuzzing, benchmarks).
std::vector<std::vector<std::byte>> seal_page_record_datagrams(AeadCipher& cipher, DatagramProtection protection,
                                                               const DatagramLayout& layout, DatagramHeader first,
                                                               const DatagramEntry& entry, const std::byte* page);

}  // namespace hymig
