#include "protocol/page_record.hpp"

#include <array>
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

std::size_t page_record_body_bytes(const DatagramLayout& layout) {
  return kPageRecordPageAt + std::size_t{layout.chunk_count} * layout.chunk_bytes + kDatagramTagBytes;
}

namespace {
// The zero tag field of every chunk but the last (the zero entry fields are in the heads).
constexpr std::array<std::byte, kDatagramTagBytes> kZeroField{};
}  // namespace

void seal_page_record(AeadCipher& cipher, DatagramProtection protection, const DatagramLayout& layout,
                      DatagramHeader first, const DatagramEntry& entry, std::byte* body,
                      std::span<std::byte* const> heads) {
  const bool encrypt = protection == DatagramProtection::aead;
  first.flags = static_cast<std::uint8_t>((encrypt ? kDatagramEncrypted : 0) | kDatagramPageRecord);
  first.entry_count = 1;
  first.chunk_index = 0;
  first.chunk_count = layout.chunk_count;
  first.payload_bytes = layout.chunk_bytes;
  for (std::uint16_t i = 0; i < layout.chunk_count; ++i) {
    encode_datagram_head(heads[i], page_record_chunk_header(first, i), std::span<const DatagramEntry>(&entry, 1));
    if (i > 0) std::memset(heads[i] + kDatagramHeaderBytes, 0, kEntryBytes);  // the entry travels once, in chunk 0
  }
  // The entry, in clear, where chunk 0's entry field is gathered from; the page's padding.
  std::memcpy(body, heads[0] + kDatagramHeaderBytes, kEntryBytes);
  const std::size_t padded = std::size_t{layout.chunk_count} * layout.chunk_bytes;
  std::memset(body + kPageRecordPageAt + layout.page_size, 0, padded - layout.page_size);
  cipher.begin(first.seq, std::span<const std::byte>(heads[0], kDatagramHeaderBytes));
  const std::span<std::byte> stream(body, kPageRecordPageAt + padded);
  if (encrypt)
    cipher.crypt(stream, stream.data());
  else
    cipher.authenticate(stream);
  const AeadTag tag = cipher.finish_seal();
  std::memcpy(body + stream.size(), tag.data(), tag.size());
}

std::size_t page_record_chunk_parts(const DatagramLayout& layout, const std::byte* body, const std::byte* head,
                                    std::uint16_t index, std::span<ConstBuffer, kPageRecordMaxParts> parts) {
  const bool last = index + 1 == layout.chunk_count;
  const std::byte* const payload = body + kPageRecordPageAt + std::size_t{index} * layout.chunk_bytes;
  // Chunk 0 takes its entry field from the body (sealed), the others from their head (zeros); the
  // last chunk's tag follows its payload in the body.
  std::size_t n = 0;
  if (index == 0)
    parts[n++] = {head, kDatagramHeaderBytes};
  else
    parts[n++] = {head, kPageRecordHeadBytes};
  const std::byte* const from = index == 0 ? body : payload;
  parts[n++] = {from, static_cast<std::size_t>(payload + layout.chunk_bytes + (last ? kDatagramTagBytes : 0) - from)};
  if (!last) parts[n++] = {kZeroField.data(), kZeroField.size()};
  return n;
}

std::vector<std::vector<std::byte>> seal_page_record_datagrams(AeadCipher& cipher, DatagramProtection protection,
                                                               const DatagramLayout& layout, DatagramHeader first,
                                                               const DatagramEntry& entry, const std::byte* page) {
  std::vector<std::byte> body(page_record_body_bytes(layout));
  std::memcpy(body.data() + kPageRecordPageAt, page, layout.page_size);
  std::vector<std::byte> heads(std::size_t{layout.chunk_count} * kPageRecordHeadBytes);
  std::vector<std::byte*> at(layout.chunk_count);
  for (std::uint16_t i = 0; i < layout.chunk_count; ++i) at[i] = heads.data() + std::size_t{i} * kPageRecordHeadBytes;
  seal_page_record(cipher, protection, layout, first, entry, body.data(), at);
  std::vector<std::vector<std::byte>> out;
  out.reserve(layout.chunk_count);
  for (std::uint16_t i = 0; i < layout.chunk_count; ++i) {
    std::array<ConstBuffer, kPageRecordMaxParts> parts;
    const std::size_t n = page_record_chunk_parts(layout, body.data(), at[i], i, parts);
    auto& d = out.emplace_back();
    for (std::size_t k = 0; k < n; ++k) d.insert(d.end(), parts[k].data, parts[k].data + parts[k].size);
  }
  return out;
}

}  // namespace hymig
