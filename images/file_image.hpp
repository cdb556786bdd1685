// A source image that is an existing file (e.g. under /dev/shm), mapped read-only. Another process
// may write it; modified pages are found by comparing page hashes with what was sent. With
// pause_pid, that process is stopped at pause (SIGSTOP), continued on failure (SIGCONT) and killed
// once the destination committed (the workload lives there now).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "core/mapping.hpp"
#include "images/image.hpp"

namespace hymig {

class FileImage final : public SourceImage {
 public:
  FileImage(const std::string& path, std::optional<pid_t> pause_pid, std::size_t page_size = 4096);

  std::string kind() const override { return "file"; }
  std::string name() const override { return name_; }
  std::size_t page_size() const override { return page_size_; }
  std::uint64_t page_count() const override { return pages_; }
  std::span<const std::byte> memory() const override { return {map_.data(), map_.size()}; }
  void start_dirty_tracking() override {}
  void collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent_hashes) override;
  void pause() override;
  void resume() override;
  void handed_over() override;

 private:
  std::string name_;
  std::optional<pid_t> pause_pid_;
  std::size_t page_size_;
  std::uint64_t pages_ = 0;
  Mapping map_;
};

// The dirty scan of images without a write log (files, a VM's RAM file): ORs into `out` every page
// of `memory` whose hash differs from sent_hashes[page], hashing on every core. Pages set in
// `zero` (holes of the file) count as zero pages without being read.
void scan_modified_pages(std::span<const std::byte> memory, std::size_t page_size,
                         std::span<const std::uint64_t> sent_hashes, Bitmap& out, const Bitmap* zero = nullptr);

// Where a file image lands on the destination: DIR/.NAME.SESSION.part while it arrives, renamed to
// DIR/NAME on commit, unlinked on discard. Space is reserved up front so a full disk is a clear
// error at notify time rather than a SIGBUS mid-stream. An existing DIR/NAME is refused (at
// notify, and again atomically at the rename) unless `replace`. The commit is durable: contents
// and directory are synced before it returns (the source lets go of its copy on the answer).
std::unique_ptr<TargetImage> make_file_target(const std::string& dir, const std::string& name,
                                              std::uint64_t session, std::uint64_t bytes, bool replace = false);

// An anonymous in-memory target (synthetic images): dropped after the session.
std::unique_ptr<TargetImage> make_memory_target(std::uint64_t bytes);

}  // namespace hymig
