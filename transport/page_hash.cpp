#include "transport/page_hash.hpp"

#include <xxhash.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "transport/parallel.hpp"

namespace hymig {

std::uint64_t hash_page(const std::byte* page, std::size_t page_size) {
  return XXH3_64bits(page, page_size);
}

std::uint64_t zero_page_hash(std::size_t page_size) {
  // Page sizes are few (4 KiB in practice): cache the last one without locking on the hot path.
  thread_local std::size_t cached_size = 0;
  thread_local std::uint64_t cached_hash = 0;
  if (cached_size != page_size) {
    std::vector<std::byte> zeros(page_size);
    cached_hash = XXH3_64bits(zeros.data(), page_size);
    cached_size = page_size;
  }
  return cached_hash;
}

bool is_zero_page(const std::byte* page, std::size_t page_size) {
  static const std::byte zeros[4096] = {};
  for (std::size_t off = 0; off < page_size; off += sizeof zeros) {
    const std::size_t n = std::min(sizeof zeros, page_size - off);
    if (std::memcmp(page + off, zeros, n) != 0) return false;
  }
  return true;
}

Digest digest_of_hashes(std::span<const std::uint64_t> page_hashes) {
  // Page hashes are hashed as little-endian 64-bit words (the host order on every supported target).
  static_assert(std::endian::native == std::endian::little, "hymig assumes a little-endian host");
  const XXH128_hash_t h = XXH3_128bits(page_hashes.data(), page_hashes.size_bytes());
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, h);
  Digest d;
  std::memcpy(d.data(), canon.digest, d.size());
  return d;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (auto b : bytes) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

void hash_all_pages(std::span<const std::byte> image, std::size_t page_size,
                    std::span<std::uint64_t> hashes, unsigned threads) {
  parallel_for(hashes.size(), threads, [&](std::uint64_t b, std::uint64_t e) {
    for (std::uint64_t p = b; p < e; ++p) hashes[p] = XXH3_64bits(image.data() + p * page_size, page_size);
  });
}

void hash_all_pages(std::span<const std::byte> image, std::size_t page_size, std::span<std::uint64_t> hashes,
                    const Bitmap& zero, unsigned threads) {
  const std::uint64_t zero_hash = zero_page_hash(page_size);
  parallel_for(hashes.size(), threads, [&](std::uint64_t b, std::uint64_t e) {
    for (std::uint64_t p = b; p < e; ++p)
      hashes[p] = zero.test(p) ? zero_hash : XXH3_64bits(image.data() + p * page_size, page_size);
  });
}

}  // namespace hymig
