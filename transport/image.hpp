// What the engine moves: a source image it reads (and watches for writes) and a target image the
// receiver writes into. Both are one contiguous mapping so datagrams and page messages can gather
// from and scatter into them directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "transport/bitmap.hpp"

namespace hymig {

class SourceImage {
 public:
  virtual ~SourceImage() = default;

  virtual std::string kind() const = 0;  // "synthetic" | "file" | "vm"
  virtual std::string name() const = 0;  // plain file name the destination stores it under
  virtual std::size_t page_size() const = 0;
  virtual std::uint64_t page_count() const = 0;
  std::uint64_t bytes() const { return page_count() * page_size(); }

  // The whole image. Pages may change under the reader until pause().
  virtual std::span<const std::byte> memory() const = 0;

  // Starts (or restarts) tracking: after this, collect_dirty() reports pages written since.
  virtual void start_dirty_tracking() = 0;

  // ORs into `out` every page modified since the last call (or since start_dirty_tracking).
  // `sent_hashes` holds the hash of each page as last sent; images without an exact write log find
  // modified pages by comparing against it.
  virtual void collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent_hashes) = 0;

  // Stop every writer (the VM, the writer threads, the writing process) / let them go on.
  virtual void pause() = 0;
  virtual void resume() = 0;
  // The destination committed: the workload lives there now; the source must never run again.
  virtual void handed_over() = 0;
};

class TargetImage {
 public:
  virtual ~TargetImage() = default;
  virtual std::span<std::byte> memory() = 0;
  virtual std::string description() const = 0;  // where it lives, for logs
  // Make the image visible under its final name. Throws on failure (the session then aborts).
  virtual void commit() = 0;
  // Drop the partial image; nothing remains under the final name. Never throws.
  virtual void discard() noexcept = 0;
};

}  // namespace hymig
