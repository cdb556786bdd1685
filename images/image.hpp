// What the engine moves: a source image it reads (and watches for writes) and a target image the
// receiver writes into. Both are one contiguous mapping so datagrams and page messages can gather
// from and scatter into them directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "core/bitmap.hpp"

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

  // Sets in `out` (sized to the page count) the pages that lie in holes of the backing file right
  // now: zeros, known without reading them (reading a tmpfs hole through a shared mapping
  // allocates it). A page may stop being a hole right after; its next hash then differs from the
  // zero page's and it is found modified. Default: none known.
  virtual void find_zero_pages(Bitmap& out) const {}

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

  // State that is not in memory() and moves after both sides verified the memory, before the
  // commit: a VM's device state. Called once, paused; hands the bytes to `sink` in pieces as they
  // are produced and returns when all were. Throws when it cannot (the caller then resumes the
  // image, which must run on as before).
  // What the destination needs to recreate the VM around the memory (a libvirt domain's XML and
  // whether it is persistent, as JSON text), carried in notify; "" for images that need none.
  virtual std::string vm_definition() const { return {}; }

  using DeviceStateSink = std::function<void(std::span<const std::byte>)>;
  virtual bool has_device_state() const { return false; }
  virtual void produce_device_state(const DeviceStateSink& sink) {}
};

class TargetImage {
 public:
  virtual ~TargetImage() = default;
  virtual std::span<std::byte> memory() = 0;
  virtual std::string description() const = 0;  // where it lives, for logs
  // True when every byte of memory() is zero before the session writes it (a fresh file or
  // mapping): zero pages then need no write, and a sparse file stays sparse.
  virtual bool starts_zeroed() const { return false; }
  // Sets in `out` (sized to the page count) the pages that lie in holes of the backing file right
  // now: zeros, and cheaper to know than to read. Default: none known.
  virtual void find_zero_pages(Bitmap& out) const {}
  // Make the image visible under its final name (a VM: resume it there). Throws on failure (the
  // session then aborts).
  virtual void commit() = 0;
  // Drop the partial image; nothing remains under the final name (a VM's QEMU is gone). Never throws.
  virtual void discard() noexcept = 0;

  // The source's device state (see SourceImage::produce_device_state), after the digest matched and
  // before commit(): written piece by piece, then finish_device_state() returns once it is applied
  // (a VM loaded it) or throws. A target that takes device state refuses a commit without it.
  virtual bool takes_device_state() const { return false; }
  virtual void write_device_state(std::span<const std::byte> bytes) {}
  virtual void finish_device_state() {}
};

}  // namespace hymig
