#include "transport/page_hash.hpp"

#include <sodium.h>
#include <xxhash.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "transport/error.hpp"
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

namespace {

struct DigestKeys {
  TrafficKey page_mac;                        // AES-GMAC of each page
  std::array<std::uint8_t, 32> combine{};    // BLAKE2b over the tags or hashes
};

DigestKeys digest_keys(const SessionSecrets& secrets) {
  DigestKeys k;
  k.page_mac = secrets.traffic_key("digest page-mac", Role::source);
  secrets.derive("digest combine", k.combine);
  return k;
}

Digest keyed_blake2b(const std::array<std::uint8_t, 32>& key, std::span<const std::byte> bytes) {
  if (sodium_init() < 0) throw Error(ErrorKind::io, "libsodium failed to initialise");
  Digest d;
  crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), key.data(),
                     key.size());
  return d;
}

}  // namespace

Digest keyed_digest_of_hashes(const SessionSecrets& secrets, std::span<const std::uint64_t> page_hashes) {
  // Page hashes are hashed as little-endian 64-bit words (the host order on every supported target).
  static_assert(std::endian::native == std::endian::little, "hymig assumes a little-endian host");
  return keyed_blake2b(digest_keys(secrets).combine, std::as_bytes(page_hashes));
}

Digest keyed_digest_of_image(const SessionSecrets& secrets, std::span<const std::byte> image, std::size_t page_size,
                             const Bitmap& zero, unsigned threads) {
  // Each page's tag is GMAC under one nonce: the tags are never shown (only the keyed BLAKE2b of
  // all of them, in page order, which also binds each tag to its page), so the nonce needs no
  // variation, and a hole's tag is the zero page's, computed once.
  const DigestKeys keys = digest_keys(secrets);
  const std::uint64_t pages = image.size() / page_size;
  std::vector<AeadTag> tags(pages);
  AeadTag zero_tag;
  {
    AeadCipher c(keys.page_mac, AeadCipher::Direction::seal);
    const std::vector<std::byte> zeros(page_size);
    c.begin(0, zeros);
    zero_tag = c.finish_seal();
  }
  parallel_for(pages, threads, [&](std::uint64_t b, std::uint64_t e) {
    AeadCipher c(keys.page_mac, AeadCipher::Direction::seal);
    for (std::uint64_t p = b; p < e; ++p) {
      if (zero.test(p)) {
        tags[p] = zero_tag;
        continue;
      }
      c.begin(0, image.subspan(p * page_size, page_size));
      tags[p] = c.finish_seal();
    }
  });
  return keyed_blake2b(keys.combine, std::as_bytes(std::span(tags)));
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
