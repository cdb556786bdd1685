// Per-page hashes and the whole-image digest both sides compare before the handover.
// XXH3-64 per page (14-18 GB/s per core here) finds modified pages and catches noise; it is no
// guard against an attacker (second preimages take a millisecond). The digest that decides the
// handover is keyed by the session (SessionSecrets "digest"): with --verify full, UMAC-64 (RFC
// 4418, nettle) of every page's contents, and BLAKE2b keyed over those tags in page order; with
// --verify fast, BLAKE2b keyed over the per-page XXH3 hashes each side recorded (pages were
// authenticated in transit).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/bitmap.hpp"
#include "security/session_secrets.hpp"

namespace hymig {

std::uint64_t hash_page(const std::byte* page, std::size_t page_size);

// Copies a page out of a running guest's memory, which the guest may be writing meanwhile: that
// race is the method's (a page changed while read is sent again). The one place the source reads
// guest memory into its own, so the tsan lane can name it (tests/tsan.supp).
void copy_guest_page(std::byte* to, const std::byte* from, std::size_t page_size);

// The hash an all-zero page of this size has; computed once per size.
std::uint64_t zero_page_hash(std::size_t page_size);

// True when every byte is zero. Called only when the hash already says "probably zero".
bool is_zero_page(const std::byte* page, std::size_t page_size);

using Digest = std::array<std::uint8_t, 16>;

// --verify fast: the keyed digest of the per-page hashes.
Digest keyed_digest_of_hashes(const SessionSecrets& secrets, std::span<const std::uint64_t> page_hashes);

// --verify full: the keyed digest of the image's contents. Pages set in `zero` (holes) are taken as
// zeros without being read. Spread over `threads` threads (0 = one per core).
Digest keyed_digest_of_image(const SessionSecrets& secrets, std::span<const std::byte> image, std::size_t page_size,
                             const Bitmap& zero, unsigned threads = 0);

// The same in steps, so that the destination can tag the bulk of its image while the final delta
// still streams, then tag again only the pages written since. Each page's tag is UMAC-64 under
// one nonce: the tags are never shown (only the keyed BLAKE2b of all of them in page order, which
// also binds each tag to its page), so the nonce needs no variation, and a hole's tag is the zero
// page's, computed once. 8.3 GB/s per core here (GMAC: 5; XXH3: 14).
using PageTag = std::uint64_t;
class ImageTags {
 public:
  ImageTags(const SessionSecrets& secrets, std::size_t page_size, std::uint64_t page_count);
  void tag_all(std::span<const std::byte> image, const Bitmap& zero, unsigned threads = 0);
  void retag(std::span<const std::byte> image, const Bitmap& pages, const Bitmap& zero, unsigned threads = 0);
  Digest digest() const;

 private:
  void tag(std::span<const std::byte> image, const Bitmap* only, const Bitmap& zero, unsigned threads);
  std::size_t page_size_;
  std::vector<PageTag> tags_;
  PageTag zero_tag_ = 0;
  std::array<std::uint8_t, 16> page_mac_key_{};  // UMAC's key size
  std::array<std::uint8_t, 32> combine_key_{};
};
std::string to_hex(std::span<const std::uint8_t> bytes);
inline std::string to_hex(const Digest& d) { return to_hex(std::span<const std::uint8_t>(d)); }

// Hashes pages [0, hashes.size()) of `image` into `hashes`, spread over `threads` threads
// (0 = one per core).
void hash_all_pages(std::span<const std::byte> image, std::size_t page_size,
                    std::span<std::uint64_t> hashes, unsigned threads = 0);
// The same, but pages set in `zero` (holes of a sparse file: zeros by the file system's word)
// get the zero page's hash without being read. Reading a hole of a tmpfs file through a shared
// mapping allocates it: a 1 GiB guest's RAM file, mostly holes, took 1.3 s to rehash.
void hash_all_pages(std::span<const std::byte> image, std::size_t page_size, std::span<std::uint64_t> hashes,
                    const Bitmap& zero, unsigned threads = 0);

}  // namespace hymig
