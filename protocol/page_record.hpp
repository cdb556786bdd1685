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
// more cipher time per page (seven update calls instead of four).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "protocol/wire.hpp"
#include "security/aead.hpp"

namespace hymig {

// The bytes of every chunk datagram of a page record.
std::size_t page_record_datagram_bytes(const DatagramLayout& layout);

// The header chunk `index` of the record begun by `first` (chunk 0's header) must carry.
DatagramHeader page_record_chunk_header(const DatagramHeader& first, std::uint16_t index);

// Seals `page` (layout.page_size bytes) as one record of layout.chunk_count datagrams, chunk i
// written at out[i] (page_record_datagram_bytes each). `first` gives session, lane, sequence
// number (chunks take first.seq .. first.seq + chunk_count - 1), send time and round; flags and
// the chunk fields are set here. `cipher` is the sealing cipher for first.seq.
void seal_page_record(AeadCipher& cipher, DatagramProtection protection, const DatagramLayout& layout,
                      DatagramHeader first, const DatagramEntry& entry, const std::byte* page,
                      std::span<std::byte* const> out);

}  // namespace hymig
