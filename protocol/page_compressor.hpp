// zstd for single pages, with contexts made once per lane (no allocation per page).
//
// A page goes compressed only when zstd makes it at least a quarter smaller: below that the
// receiver's decompression costs more than the bytes saved. The receiver decompresses straight
// into the page and accepts only a frame that yields exactly one page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace hymig {

// How datagram pages are compressed: off, on (every page that shrinks enough), or auto (where the
// measured ratio and CPU say it moves pages faster: engine/compression_governor.hpp).
enum class Compression { off, on, automatic };
std::string_view to_string(Compression c);
Compression parse_compression(std::string_view s);  // "off", "on", "auto"; throws Error{usage}

inline constexpr int kZstdLevel = 1;
// Pages larger than this are never compressed (a compressed length travels in 14 bits).
inline constexpr std::size_t kMaxCompressiblePage = 16384;
// The most a compressed page may take: three quarters of the page.
inline std::size_t compressed_limit(std::size_t page_size) { return page_size * 3 / 4; }

class PageCompressor {
 public:
  PageCompressor();
  ~PageCompressor();
  PageCompressor(const PageCompressor&) = delete;
  PageCompressor& operator=(const PageCompressor&) = delete;

  // Compresses `page` into `out`; returns the compressed length, or 0 when it would not fit in
  // `out` (give out.size() = the most worth sending).
  std::size_t compress(std::span<const std::byte> page, std::span<std::byte> out);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

class PageDecompressor {
 public:
  PageDecompressor();
  ~PageDecompressor();
  PageDecompressor(const PageDecompressor&) = delete;
  PageDecompressor& operator=(const PageDecompressor&) = delete;

  // Decompresses `in` into `page`; true only when the frame yields exactly page.size() bytes.
  // On false `page` may hold anything.
  bool decompress(std::span<const std::byte> in, std::span<std::byte> page);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace hymig
