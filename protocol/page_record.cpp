#include "protocol/page_record.hpp"

#include <cstring>

namespace hymig {

std::size_t page_record_datagram_bytes(const DatagramLayout& layout) {
  return kDatagramHeaderBytes + kEntryBytes + layout.chunk_bytes + kDatagramTagBytes;
}

DatagramHeader page_record_chunk_header(const DatagramHeader& first, std::uint16_t index) {
  DatagramHeader h = first;
  h.seq = first.seq + index;
  h.chunk_index = index;
  return h;
}

void seal_page_record(AeadCipher& cipher, DatagramProtection protection, const DatagramLayout& layout,
                      DatagramHeader first, const DatagramEntry& entry, const std::byte* page,
                      std::span<std::byte* const> out) {
  const bool encrypt = protection == DatagramProtection::aead;
  first.flags = static_cast<std::uint8_t>((encrypt ? kDatagramEncrypted : 0) | kDatagramPageRecord);
  first.entry_count = 1;
  first.chunk_index = 0;
  first.chunk_count = layout.chunk_count;
  first.payload_bytes = layout.chunk_bytes;
  for (std::uint16_t i = 0; i < layout.chunk_count; ++i) {
    std::byte* const d = out[i];
    encode_datagram_head(d, page_record_chunk_header(first, i), std::span<const DatagramEntry>(&entry, 1));
    if (i == 0) cipher.begin(first.seq, std::span<const std::byte>(d, kDatagramHeaderBytes));
    std::byte* const e = d + kDatagramHeaderBytes;
    std::byte* const payload = e + kEntryBytes;
    const std::size_t len = layout.chunk_len(i);
    const std::size_t pad = layout.chunk_padding(i);
    std::byte* const tag_field = payload + layout.chunk_bytes;
    const std::byte* const piece = page + std::size_t{i} * layout.chunk_bytes;
    if (i > 0) std::memset(e, 0, kEntryBytes);  // the entry travels once, in chunk 0
    if (encrypt) {
      if (i == 0) cipher.crypt({e, kEntryBytes}, e);
      cipher.crypt({piece, len}, payload);  // out of place: no staging copy of the chunk
      std::memset(payload + len, 0, pad);
      cipher.crypt({payload + len, pad}, payload + len);
    } else {
      std::memcpy(payload, piece, len);
      std::memset(payload + len, 0, pad);
      if (i == 0) cipher.authenticate({e, kEntryBytes});
      cipher.authenticate({payload, layout.chunk_bytes});
    }
    if (i + 1 < layout.chunk_count) {
      std::memset(tag_field, 0, kDatagramTagBytes);
    } else {
      const AeadTag tag = cipher.finish_seal();
      std::memcpy(tag_field, tag.data(), tag.size());
    }
  }
}

}  // namespace hymig
