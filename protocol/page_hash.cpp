#include "protocol/page_hash.hpp"

#include <nettle/umac.h>
#include <sodium.h>
#include <xxhash.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"

namespace hymig {

std::uint64_t hash_page(const std::byte* page, std::size_t page_size) {
  return XXH3_64bits(page, page_size);
}

__attribute__((noinline)) void copy_guest_page(std::byte* to, const std::byte* from, std::size_t page_size) {
  std::memcpy(to, from, page_size);
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

static_assert(UMAC_KEY_SIZE == 16);

struct DigestKeys {
  std::array<std::uint8_t, UMAC_KEY_SIZE> page_mac{};  // UMAC-64 of each page
  std::array<std::uint8_t, 32> combine{};              // BLAKE2b over the tags or hashes
};

DigestKeys digest_keys(const SessionSecrets& secrets) {
  DigestKeys k;
  secrets.derive("digest page-mac", k.page_mac);
  secrets.derive("digest combine", k.combine);
  return k;
}

// One UMAC-64 context per thread (its key schedule is made once).
class PageMac {
 public:
  explicit PageMac(const std::array<std::uint8_t, UMAC_KEY_SIZE>& key) { umac64_set_key(&ctx_, key.data()); }
  PageTag operator()(const std::byte* page, std::size_t bytes) {
    // One nonce for every page (nettle would otherwise advance it): see ImageTags.
    static constexpr std::uint8_t kNonce[8] = {};
    umac64_set_nonce(&ctx_, sizeof kNonce, kNonce);
    umac64_update(&ctx_, bytes, reinterpret_cast<const std::uint8_t*>(page));
    PageTag tag{};
    umac64_digest(&ctx_, sizeof tag, reinterpret_cast<std::uint8_t*>(&tag));
    return tag;
  }

 private:
  umac64_ctx ctx_{};
};

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

ImageTags::ImageTags(const SessionSecrets& secrets, std::size_t page_size, std::uint64_t page_count)
    : page_size_(page_size), tags_(page_count) {
  const DigestKeys keys = digest_keys(secrets);
  page_mac_key_ = keys.page_mac;
  combine_key_ = keys.combine;
  const std::vector<std::byte> zeros(page_size);
  zero_tag_ = PageMac(page_mac_key_)(zeros.data(), page_size);
}

void ImageTags::tag(std::span<const std::byte> image, const Bitmap* only, const Bitmap& zero, unsigned threads) {
  parallel_for(tags_.size(), threads, [&](std::uint64_t b, std::uint64_t e) {
    PageMac mac(page_mac_key_);
    for (std::uint64_t p = b; p < e; ++p) {
      if (only && !only->test(p)) continue;
      tags_[p] = zero.test(p) ? zero_tag_ : mac(image.data() + p * page_size_, page_size_);
    }
  });
}

void ImageTags::tag_all(std::span<const std::byte> image, const Bitmap& zero, unsigned threads) {
  tag(image, nullptr, zero, threads);
}

void ImageTags::retag(std::span<const std::byte> image, const Bitmap& pages, const Bitmap& zero, unsigned threads) {
  tag(image, &pages, zero, threads);
}

Digest ImageTags::digest() const { return keyed_blake2b(combine_key_, std::as_bytes(std::span(tags_))); }

Digest keyed_digest_of_image(const SessionSecrets& secrets, std::span<const std::byte> image, std::size_t page_size,
                             const Bitmap& zero, unsigned threads) {
  ImageTags tags(secrets, page_size, image.size() / page_size);
  tags.tag_all(image, zero, threads);
  return tags.digest();
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
