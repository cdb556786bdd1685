#include "protocol/page_compressor.hpp"

#include <new>
#include <string>

#include <zstd.h>

#include "core/error.hpp"

namespace hymig {

std::string_view to_string(Compression c) {
  switch (c) {
    case Compression::off: return "off";
    case Compression::on: return "on";
    case Compression::automatic: break;
  }
  return "auto";
}

Compression parse_compression(std::string_view s) {
  if (s == "off") return Compression::off;
  if (s == "on") return Compression::on;
  if (s == "auto") return Compression::automatic;
  throw Error(ErrorKind::usage, "--compress must be auto, on or off, not '" + std::string(s) + "'");
}

struct PageCompressor::Ctx {
  ZSTD_CCtx* c = nullptr;
  ~Ctx() { ZSTD_freeCCtx(c); }
};

PageCompressor::PageCompressor() : ctx_(std::make_unique<Ctx>()) {
  ctx_->c = ZSTD_createCCtx();
  if (!ctx_->c) throw std::bad_alloc();
  ZSTD_CCtx_setParameter(ctx_->c, ZSTD_c_compressionLevel, kZstdLevel);
  ZSTD_CCtx_setParameter(ctx_->c, ZSTD_c_checksumFlag, 0);    // the datagram's tag covers it
  ZSTD_CCtx_setParameter(ctx_->c, ZSTD_c_contentSizeFlag, 1);  // the receiver checks the length
}

PageCompressor::~PageCompressor() = default;

std::size_t PageCompressor::compress(std::span<const std::byte> page, std::span<std::byte> out) {
  const std::size_t n = ZSTD_compress2(ctx_->c, out.data(), out.size(), page.data(), page.size());
  return ZSTD_isError(n) ? 0 : n;
}

struct PageDecompressor::Ctx {
  ZSTD_DCtx* d = nullptr;
  ~Ctx() { ZSTD_freeDCtx(d); }
};

PageDecompressor::PageDecompressor() : ctx_(std::make_unique<Ctx>()) {
  ctx_->d = ZSTD_createDCtx();
  if (!ctx_->d) throw std::bad_alloc();
  // A frame asking for a window beyond a page's is nobody's page: refused before any work.
  ZSTD_DCtx_setParameter(ctx_->d, ZSTD_d_windowLogMax, 15);
}

PageDecompressor::~PageDecompressor() = default;

bool PageDecompressor::decompress(std::span<const std::byte> in, std::span<std::byte> page) {
  // The frame must declare exactly one page, and yield it.
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared != page.size()) return false;
  if (ZSTD_findFrameCompressedSize(in.data(), in.size()) != in.size()) return false;  // one frame, nothing after it
  const std::size_t n = ZSTD_decompressDCtx(ctx_->d, page.data(), page.size(), in.data(), in.size());
  return !ZSTD_isError(n) && n == page.size();
}

}  // namespace hymig
