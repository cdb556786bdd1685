#include "vm/qemu_images.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/mapping.hpp"
#include "core/unique_fd.hpp"
#include "images/file_image.hpp"
#include "vm/domain_policy.hpp"

namespace hymig::vm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kPageSize = 4096;
constexpr milliseconds kDeviceStateTimeout{30000};  // QEMU producing or loading ~0.3 MB

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

}  // namespace

UniqueFd open_target_ram_file(const RamFileRule& rule, const std::string& path, UniqueFd& dir, std::string& leaf) {
  const auto refusal = [&](const std::string& why) {
    return Error(ErrorKind::refused, "the guest's RAM file " + path + " " + why + ": hymig fills only a regular file below " +
                                         join(rule.dirs) + (rule.fix.empty() ? "" : " (" + rule.fix + ")"));
  };
  const auto norm = normalize_absolute_path(path);
  if (!norm) throw refusal("is not an absolute path without '..'");
  std::string base;
  for (const auto& d : rule.dirs)
    if (const auto dn = normalize_absolute_path(d); dn && *dn != *norm && path_is_within(*norm, *dn)) {
      base = *dn;
      break;
    }
  if (base.empty()) throw refusal("is not below the memory-backing directory");
  std::vector<std::string> below;
  for (std::size_t i = base == "/" ? 1 : base.size() + 1; i < norm->size();) {
    const std::size_t j = std::min(norm->find('/', i), norm->size());
    below.push_back(norm->substr(i, j - i));
    i = j + 1;
  }
  // The directory is the operator's (a link there is theirs); nothing below it is followed.
  UniqueFd at(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!at) throw_errno("cannot open the memory-backing directory " + base);
  for (std::size_t i = 0; i + 1 < below.size(); ++i) {
    UniqueFd next(::openat(at.get(), below[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next && (errno == ELOOP || errno == ENOTDIR)) throw refusal("lies behind '" + below[i] + "', a symbolic link or no directory");
    if (!next) throw_errno("cannot open the directory of the guest's RAM file " + path);
    at = std::move(next);
  }
  const std::string& name = below.back();
  struct stat before{};
  if (::fstatat(at.get(), name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("cannot stat the guest's RAM file " + path);
  if (S_ISLNK(before.st_mode)) throw refusal("is a symbolic link");
  if (!S_ISREG(before.st_mode)) throw refusal("is not a regular file");
  UniqueFd fd(::openat(at.get(), name.c_str(), O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
  if (!fd && errno == ELOOP) throw refusal("is a symbolic link");
  if (!fd) throw_errno("cannot open the guest's RAM file " + path);
  struct stat after{};
  if (::fstat(fd.get(), &after) != 0) throw_errno("cannot stat the guest's RAM file " + path);
  if (!S_ISREG(after.st_mode) || after.st_dev != before.st_dev || after.st_ino != before.st_ino)
    throw refusal("was replaced while it was opened");
  dir = std::move(at);
  leaf = name;
  return fd;
}

namespace {

// A guest's RAM file, mapped whole; remembers which file it was so it is only ever deleted if the
// path still names it.
struct RamFile {
  std::string path;
  Mapping map;
  dev_t dev = 0;
  ino_t ino = 0;
  bool zeroed = false;  // emptied at open (a destination's, whose QEMU has not used it yet)
  UniqueFd fd;          // kept for finding holes
  UniqueFd dir;         // a destination's: the directory it is in, and its name there
  std::string leaf;

  // A source's RAM file read-only (`rule` null), or a destination's read-write under `rule`.
  static RamFile open(const RamBackend& b, const RamFileRule* rule) {
    RamFile f;
    f.path = b.mem_path;
    const bool writable = rule != nullptr;
    UniqueFd fd = writable ? open_target_ram_file(*rule, b.mem_path, f.dir, f.leaf)
                           : UniqueFd(::open(b.mem_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("cannot open the guest's RAM file " + b.mem_path);
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat the guest's RAM file " + b.mem_path);
    if (!S_ISREG(st.st_mode))
      throw Error(ErrorKind::usage, "the guest's mem-path " + b.mem_path +
                                        " is not a regular file (a directory makes QEMU use an unlinked file hymig cannot "
                                        "open): give memory-backend-file a file name, e.g. mem-path=/dev/shm/guest.ram");
    if (b.size == 0 || b.size % kPageSize || static_cast<std::uint64_t>(st.st_size) < b.size)
      throw Error(ErrorKind::usage, "the guest's RAM file " + b.mem_path + " holds " + std::to_string(st.st_size) +
                                        " bytes for a backend of " + std::to_string(b.size) + ": not QEMU's RAM file?");
    // A destination's RAM is hymig's to fill: emptied (and made sparse), so zero pages need no
    // write. Where the file system cannot punch holes, pages are written whatever they are.
    if (writable)
      f.zeroed = ::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(b.size)) == 0;
    void* p = ::mmap(nullptr, b.size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw_errno("cannot map the guest's RAM file " + b.mem_path);
    f.map = Mapping(p, b.size);
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.fd = std::move(fd);
    return f;
  }

  // Sets the pages that lie wholly in holes of the file (SEEK_HOLE/SEEK_DATA); none where the
  // file system cannot say.
  void find_holes(Bitmap& out) const {
    const off_t end = static_cast<off_t>(map.size());
    off_t at = 0;
    while (at < end) {
      const off_t hole = ::lseek(fd.get(), at, SEEK_HOLE);
      if (hole < 0 || hole >= end) return;
      off_t data = ::lseek(fd.get(), hole, SEEK_DATA);
      if (data < 0 || data > end) data = end;  // ENXIO: a hole to the end
      for (std::uint64_t p = (static_cast<std::uint64_t>(hole) + kPageSize - 1) / kPageSize;
           (p + 1) * kPageSize <= static_cast<std::uint64_t>(data); ++p)
        out.set(p);
      if (data <= at) return;  // no progress: give up rather than loop
      at = data;
    }
  }

  // Deletes the file if `path` still names the file that was mapped. Never throws.
  void unlink() noexcept {
    map.reset();
    struct stat st{};
    if (dir) {
      if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino)
        ::unlinkat(dir.get(), leaf.c_str(), 0);
    } else if (!path.empty() && ::stat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
      ::unlink(path.c_str());
    }
    path.clear();
  }
};

// The device state's socket pair: hymig's end first, QEMU's second.
std::pair<UniqueFd, UniqueFd> socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("cannot create a socket pair for the device state");
  // Ours (the first) never blocks: waits are polls with deadlines. QEMU sets up its own end.
  ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

int poll_ms(Clock::time_point deadline, milliseconds cap) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(std::min(left, cap).count(), 0, cap.count()));
}

// ---- the source --------------------------------------------------------------------------------

class QemuSourceImage final : public SourceImage {
 public:
  QemuSourceImage(QemuVm vm, std::unique_ptr<SourceGuestControl> control, const std::string& label)
      : vm_(std::move(vm)), control_(std::move(control)) {
    const std::string where = vm_.where();
    // Running only: the destination resumes what arrives (a paused guest would wake up there).
    if (const std::string st = vm_.status(); st != "running")
      throw Error(ErrorKind::usage, where + " runs a guest that is '" + st + "', not running: hymig migrates a running guest" +
                                        (st == "paused" || st == "prelaunch" ? " (cont it first)" : ""));
    const std::string mig = vm_.migration_status();
    if (migration_active(mig))
      throw Error(ErrorKind::usage, "a migration of the guest of " + where + " is already under way ('" + mig +
                                        "'): wait for it or migrate_cancel it");
    if (const auto why = vm_.migration_blockers(); !why.empty()) {
      std::string all;
      for (const auto& w : why) all += (all.empty() ? "" : "; ") + w;
      throw Error(ErrorKind::usage, "QEMU refuses to migrate the guest of " + where + ": " + all +
                                        " (remove what blocks it, or migrate the guest another way)");
    }
    ram_ = RamFile::open(vm_.ram_backend(), nullptr);
    name_ = label;
  }

  std::string kind() const override { return "vm"; }
  std::string name() const override { return name_; }
  std::size_t page_size() const override { return kPageSize; }
  std::uint64_t page_count() const override { return ram_.map.size() / kPageSize; }
  std::span<const std::byte> memory() const override { return {ram_.map.data(), ram_.map.size()}; }
  void start_dirty_tracking() override {}
  void find_zero_pages(Bitmap& out) const override { ram_.find_holes(out); }
  void collect_dirty(Bitmap& out, std::span<const std::uint64_t> sent_hashes) override {
    Bitmap holes(page_count());
    ram_.find_holes(holes);
    scan_modified_pages(memory(), kPageSize, sent_hashes, out, &holes);
  }

  void pause() override { control_->pause(vm_); }

  // Runs on where it was: any migration of ours cancelled, x-ignore-shared off again (a later
  // native migration must send the RAM), the guest continued.
  void resume() override {
    if (migration_active(vm_.migration_status())) {
      vm_.migrate_cancel();
      const auto deadline = Clock::now() + milliseconds(10000);
      while (migration_active(vm_.migration_status())) {
        if (Clock::now() > deadline) throw Error(ErrorKind::timeout, "QEMU did not cancel its migration within 10 s");
        ::usleep(1000);
      }
    }
    if (ignore_shared_on_) {
      vm_.set_ignore_shared(false);
      ignore_shared_on_ = false;
    }
    control_->cont(vm_);
  }

  // The guest lives on the destination: this QEMU ends and its RAM file, a stale copy of the
  // guest's memory, is deleted.
  void handed_over() override {
    control_->end(vm_);
    ram_.unlink();
  }

  std::string vm_definition() const override { return control_->definition(); }

  bool has_device_state() const override { return true; }

  // QEMU migrates into one end of a socket pair; with x-ignore-shared it leaves out the RAM file,
  // so the stream is the device state (and small non-shared RAM such as ROMs): ~0.2–0.3 MB.
  void produce_device_state(const DeviceStateSink& sink) override {
    ignore_shared_on_ = true;  // first: resume() turns it off even if this call fails half-way
    vm_.set_ignore_shared(true);
    auto [ours, theirs] = socket_pair();
    vm_.migrate_to_fd(std::move(theirs));
    std::vector<std::byte> buf(kMaxDeviceStatePiece);
    const auto deadline = Clock::now() + kDeviceStateTimeout;
    while (true) {
      pollfd p{ours.get(), POLLIN, 0};
      const int r = ::poll(&p, 1, poll_ms(deadline, milliseconds(100)));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw_errno("poll on the device-state socket");
      if (r == 0) {
        // Quiet: QEMU may have failed (it closes the socket then, too) or be slow.
        const auto q = vm_.query_migrate();
        const std::string s = q.value("status", std::string());
        if (s == "failed" || s == "cancelled")
          throw Error(ErrorKind::io, "the source QEMU's migration " + s + ": " + q.value("error-desc", std::string("no reason given")));
        if (Clock::now() >= deadline)
          throw Error(ErrorKind::timeout, "the source QEMU produced no device state for " +
                                              std::to_string(kDeviceStateTimeout.count() / 1000) + " s (migration '" + s + "')");
        continue;
      }
      const ssize_t n = ::recv(ours.get(), buf.data(), buf.size(), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) throw_errno("cannot read the source QEMU's device state");
      if (n == 0) break;  // QEMU closed its end: the stream is complete, or the migration failed
      sink(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
    }
    vm_.wait_migration_completed(milliseconds(10000));
  }

 private:
  QemuVm vm_;
  std::unique_ptr<SourceGuestControl> control_;
  RamFile ram_;
  std::string name_;
  bool ignore_shared_on_ = false;
};

// ---- the destination ---------------------------------------------------------------------------

class QemuTargetImage final : public TargetImage {
 public:
  QemuTargetImage(QemuVm vm, const Notify& n, std::unique_ptr<TargetGuestControl> control, const RamFileRule& ram)
      : vm_(std::move(vm)), control_(std::move(control)), where_(vm_.where()), ram_rule_(ram) {
    try {
      check_and_listen(n);
    } catch (...) {
      discard();
      throw;
    }
  }

  ~QemuTargetImage() override { discard(); }

 private:
  void check_and_listen(const Notify& n) {
    const std::string& where = where_;
    const std::string st = vm_.status();
    if (st != "inmigrate")
      throw Error(ErrorKind::usage, "the destination, " + where + ", is '" + st +
                                        "', not waiting for an incoming migration: start it with -incoming defer");
    if (const std::string mig = vm_.migration_status(); !mig.empty() && mig != "none")
      throw Error(ErrorKind::usage, "the destination, " + where + ", already has an incoming migration ('" + mig +
                                        "'): start a fresh one with -incoming defer");
    if (n.page_size != kPageSize)
      throw Error(ErrorKind::usage, "a VM image of " + std::to_string(n.page_size) + "-byte pages; this side moves 4096");
    const RamBackend b = vm_.ram_backend();
    if (b.size != n.image_bytes)
      throw Error(ErrorKind::usage, "the destination, " + where + ", has " + std::to_string(b.size) +
                                        " bytes of RAM, the source's guest " + std::to_string(n.image_bytes) +
                                        ": start it with the same -m and memory-backend size");
    ram_ = RamFile::open(b, &ram_rule_);
    // Checked and mapped: this QEMU is the session's now. Anything failing from here on destroys it
    // (a QEMU that failed a check above is someone else's and is left alone).
    adopted_ = true;
    vm_.set_ignore_shared(true);
    auto [ours, theirs] = socket_pair();
    vm_.migrate_incoming_fd(std::move(theirs));
    stream_ = std::move(ours);
  }

 public:

  std::span<std::byte> memory() override { return ram_.map.span(); }
  bool starts_zeroed() const override { return ram_.zeroed; }
  void find_zero_pages(Bitmap& out) const override { ram_.find_holes(out); }
  std::string description() const override { return where_ + " (RAM " + ram_.path + ")"; }

  bool takes_device_state() const override { return true; }

  void write_device_state(std::span<const std::byte> bytes) override {
    const auto deadline = Clock::now() + kDeviceStateTimeout;
    while (!bytes.empty()) {
      const ssize_t n = ::send(stream_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes = bytes.subspan(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{stream_.get(), POLLOUT, 0};
        if (::poll(&p, 1, poll_ms(deadline, kDeviceStateTimeout)) == 0)
          throw Error(ErrorKind::timeout, "the destination QEMU stopped reading its device state");
        continue;
      }
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        throw Error(ErrorKind::peer_vanished, "the destination QEMU closed its device-state socket (it failed to load or exited)");
      throw_errno("cannot write the device state to the destination QEMU");
    }
  }

  // Waits until QEMU loaded it; it stays paused (the source was) until commit() resumes it.
  void finish_device_state() override {
    stream_.reset();
    vm_.wait_migration_completed(kDeviceStateTimeout);
    if (const std::string st = vm_.status(); st != "paused")
      throw Error(ErrorKind::io, "the destination QEMU is '" + st + "' after loading the device state, expected 'paused'");
    control_->prepare(vm_);
  }

  // Resumes the guest here. The RAM mapping stays until the session object goes (unmapping 256 MiB
  // takes ~10-20 ms: not inside the blackout).
  void commit() override {
    control_->resume(vm_);
    committed_ = true;
    try {
      vm_.set_ignore_shared(false);
    } catch (const std::exception& e) {
      logger().warn("the guest runs, but x-ignore-shared stays on in its QEMU ({}); a later native migration needs "
                    "migrate-set-capabilities x-ignore-shared=false",
                    e.what());
    }
  }

  void discard() noexcept override {
    if (committed_ || discarded_) return;
    discarded_ = true;
    stream_.reset();
    if (adopted_) {
      if (!control_->destroy(vm_)) logger().warn("{} could not be confirmed gone", where_);
      ram_.unlink();
    }
    ram_.map.reset();
  }

 private:
  QemuVm vm_;
  std::unique_ptr<TargetGuestControl> control_;
  std::string where_;
  RamFileRule ram_rule_;
  RamFile ram_;
  UniqueFd stream_;
  bool adopted_ = false, committed_ = false, discarded_ = false;
};

}  // namespace

std::string vm_image_name(const std::string& vm_name, const std::string& ram_path) {
  std::string s = vm_name;
  if (s.empty()) {
    const auto slash = ram_path.find_last_of('/');
    s = slash == std::string::npos ? ram_path : ram_path.substr(slash + 1);
  }
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  if (s.size() > 200) s.resize(200);
  if (s.empty() || s[0] == '.') s = "vm-" + s;
  return s;
}

std::unique_ptr<SourceImage> make_qemu_source_image(QemuVm vm, std::unique_ptr<SourceGuestControl> control,
                                                    const std::string& label) {
  return std::make_unique<QemuSourceImage>(std::move(vm), std::move(control), label);
}

RamFileRule plain_qemu_ram_rule() {
  return {{"/dev/shm", "/dev/hugepages"}, "give the destination QEMU's memory-backend-file a mem-path there"};
}

std::unique_ptr<TargetImage> make_qemu_target_image(QemuVm vm, const Notify& n, std::unique_ptr<TargetGuestControl> control,
                                                    const RamFileRule& ram) {
  return std::make_unique<QemuTargetImage>(std::move(vm), n, std::move(control), ram);
}

}  // namespace hymig::vm
