#include "images/file_image.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/unique_fd.hpp"
#include "protocol/page_hash.hpp"
#include "protocol/wire.hpp"

namespace hymig {
namespace {

// True when every thread of `pid` is stopped ('T' or 't' in /proc/PID/task/TID/stat).
bool all_threads_stopped(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return false;
  while (auto* e = ::readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    std::ifstream stat(dir + "/" + e->d_name + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return false;
    const char state = line[close + 2];
    if (state != 'T' && state != 't') return false;
  }
  return true;
}

}  // namespace

FileImage::FileImage(const std::string& path, std::optional<pid_t> pause_pid, std::size_t page_size)
    : pause_pid_(pause_pid), page_size_(page_size) {
  const auto slash = path.find_last_of('/');
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  if (!is_safe_image_name(name_))
    throw Error(ErrorKind::usage, "file image '" + path + "': its name becomes the destination's file name, so it must be 1.." +
                                      std::to_string(kMaxImageNameBytes) + " of A-Z a-z 0-9 . _ - +, not starting with '.'");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT) throw Error(ErrorKind::usage, "image file '" + path + "' does not exist");
  if (!fd) throw_errno("cannot open image file '" + path + "'");
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat image file '" + path + "'");
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::usage, "image '" + path + "' is not a regular file");
  if (st.st_size == 0 || st.st_size % static_cast<off_t>(page_size_))
    throw Error(ErrorKind::usage, "image file '" + path + "' is " + std::to_string(st.st_size) +
                                      " bytes: it must be a non-zero multiple of the page size " + std::to_string(page_size_));
  pages_ = static_cast<std::uint64_t>(st.st_size) / page_size_;
  void* p = ::mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw_errno("cannot map image file '" + path + "'");
  map_ = Mapping(p, st.st_size);
  if (pause_pid_ && ::kill(*pause_pid_, 0) != 0)
    throw_errno("pause-pid " + std::to_string(*pause_pid_) + " is not a process this user can signal");
}

void scan_modified_pages(std::span<const std::byte> memory, std::size_t page_size,
                         std::span<const std::uint64_t> sent_hashes, Bitmap& out, const Bitmap* zero) {
  const std::uint64_t zero_hash = zero_page_hash(page_size);
  // No write log: a page is modified when its hash differs from the one last sent. Each thread
  // writes whole bitmap words, so the ranges are word-aligned; a word is 64 pages of hashing, so it
  // is worth a thread from 64 words on (4096 pages, as for page-sized items).
  const std::uint64_t pages = memory.size() / page_size;
  const std::uint64_t words = (pages + 63) / 64;
  const std::byte* base = memory.data();
  parallel_for(words, 0, [&](std::uint64_t wb, std::uint64_t we) {
    for (std::uint64_t w = wb; w < we; ++w) {
      std::uint64_t bits = 0;
      const std::uint64_t end = std::min(pages, (w + 1) * 64);
      for (std::uint64_t p = w * 64; p < end; ++p)
        if ((zero && zero->test(p) ? zero_hash : hash_page(base + p * page_size, page_size)) != sent_hashes[p])
          bits |= std::uint64_t{1} << (p - w * 64);
      out.words()[w] |= bits;
    }
  }, 64);
}

void FileImage::collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent_hashes) {
  scan_modified_pages(memory(), page_size_, sent_hashes, out);
}

void FileImage::pause() {
  if (!pause_pid_) return;
  if (::kill(*pause_pid_, SIGSTOP) != 0) throw_errno("cannot stop pause-pid " + std::to_string(*pause_pid_));
  // SIGSTOP is asynchronous: the final scan must not start before every thread has stopped.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!all_threads_stopped(*pause_pid_)) {
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(ErrorKind::io, "pause-pid " + std::to_string(*pause_pid_) + " did not stop within 5 s");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void FileImage::resume() {
  if (pause_pid_) ::kill(*pause_pid_, SIGCONT);
}

void FileImage::handed_over() {
  if (pause_pid_) ::kill(*pause_pid_, SIGKILL);
}

namespace {

class FileTarget final : public TargetImage {
 public:
  FileTarget(const std::string& dir, std::string name, std::uint64_t session, std::uint64_t bytes, bool replace)
      : name_(std::move(name)), final_path_(dir + "/" + name_), replace_(replace) {
    // Everything happens relative to the store's directory, opened once: no path is re-resolved
    // (a link swapped in meanwhile is not followed), and the directory can be synced.
    dir_fd_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd_) throw_errno("cannot open the store '" + dir + "'");
    struct stat st {};
    if (!replace_ && ::fstatat(dir_fd_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      throw Error(ErrorKind::refused, "the store already holds an image '" + name_ +
                                          "'; it is never replaced unless the destination runs `hymig serve --replace`");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(session));
    temp_name_ = "." + name_ + "." + buf + ".part";
    temp_path_ = dir + "/" + temp_name_;
    fd_ = UniqueFd(::openat(dir_fd_.get(), temp_name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd_) throw_errno("cannot create '" + temp_path_ + "' in the store");
    created_ = true;
    // Locked while this session owns it: a daemon starting on the same store removes only partial
    // files nobody holds (cli/stale_partial_images.hpp). The lock goes with the process, however it ends.
    ::flock(fd_.get(), LOCK_EX | LOCK_NB);
    if (int err = ::posix_fallocate(fd_.get(), 0, static_cast<off_t>(bytes)); err != 0) {
      discard();
      if (err == ENOSPC)
        throw Error(ErrorKind::no_space, "the store '" + dir + "' has no room for " + std::to_string(bytes) +
                                             " bytes (ENOSPC): free space or point --store elsewhere");
      throw_errno("cannot reserve " + std::to_string(bytes) + " bytes for '" + temp_path_ + "'", err);
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      discard();
      throw_errno("cannot map '" + temp_path_ + "'", err);
    }
    map_ = Mapping(p, bytes);
  }
  bool starts_zeroed() const override { return true; }  // created here (O_EXCL) and only reserved
  ~FileTarget() override {
    if (!committed_) discard();
  }

  std::span<std::byte> memory() override { return map_.span(); }
  std::string description() const override { return final_path_; }

  // Durable before the source is told: the contents, the new name, then the directory entry.
  void commit() override {
    if (::msync(map_.data(), map_.size(), MS_SYNC) != 0) throw_errno("cannot write '" + temp_path_ + "' back");
    if (::fsync(fd_.get()) != 0) throw_errno("cannot sync '" + temp_path_ + "'");
    rename_into_place();
    committed_ = true;
    if (::fsync(dir_fd_.get()) != 0) throw_errno("cannot sync the store's directory after renaming to '" + final_path_ + "'");
  }

  void discard() noexcept override {
    map_.reset();
    if (created_ && !committed_) ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
    created_ = false;
  }

 private:
  void rename_into_place() {
    if (replace_) {
      if (::renameat(dir_fd_.get(), temp_name_.c_str(), dir_fd_.get(), name_.c_str()) != 0)
        throw_errno("cannot rename '" + temp_path_ + "' to '" + final_path_ + "'");
      return;
    }
    if (::renameat2(dir_fd_.get(), temp_name_.c_str(), dir_fd_.get(), name_.c_str(), RENAME_NOREPLACE) == 0) return;
    int err = errno;
    if (err == EINVAL) {
      // A file system without RENAME_NOREPLACE: link (which never replaces), then drop the temp name.
      if (::linkat(dir_fd_.get(), temp_name_.c_str(), dir_fd_.get(), name_.c_str(), 0) == 0) {
        ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
        return;
      }
      err = errno;
    }
    if (err == EEXIST)
      throw Error(ErrorKind::refused, "an image '" + name_ + "' appeared in the store during the session; not replaced "
                                      "(`hymig serve --replace` allows it)");
    throw_errno("cannot rename '" + temp_path_ + "' to '" + final_path_ + "'", err);
  }

  std::string name_, final_path_, temp_name_, temp_path_;
  bool replace_;
  UniqueFd dir_fd_, fd_;
  Mapping map_;
  bool created_ = false;
  bool committed_ = false;
};

class MemoryTarget final : public TargetImage {
 public:
  explicit MemoryTarget(std::uint64_t bytes) : map_(map_anonymous(bytes, "the target image")) {}
  std::span<std::byte> memory() override { return map_.span(); }
  bool starts_zeroed() const override { return true; }
  std::string description() const override { return "memory"; }
  void commit() override {}
  void discard() noexcept override { map_.reset(); }

 private:
  Mapping map_;
};

}  // namespace

std::unique_ptr<TargetImage> make_file_target(const std::string& dir, const std::string& name,
                                              std::uint64_t session, std::uint64_t bytes, bool replace) {
  return std::make_unique<FileTarget>(dir, name, session, bytes, replace);
}

std::unique_ptr<TargetImage> make_memory_target(std::uint64_t bytes) { return std::make_unique<MemoryTarget>(bytes); }

}  // namespace hymig
