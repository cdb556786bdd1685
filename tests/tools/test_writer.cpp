// hymig-test-writer: the workload of the integration tests.
//
//   hymig-test-writer --create PATH --size SIZE [--seed S] [--zero-fraction F]
//       Creates (or truncates) PATH and fills it with SIZE bytes of pseudo-random 4 KiB pages,
//       a fraction F of them all-zero. Deterministic for a given seed; fast (xoshiro256**, no
//       /dev/urandom), so a 1 GiB image takes well under a second on tmpfs.
//
//   hymig-test-writer --file PATH --pages-per-sec N [--seed S] [--working-set-pages W]
//       Maps PATH MAP_SHARED and, until killed, overwrites random pages among the first W at N
//       pages per second. Each write fills the whole page with pseudo-random bytes and puts a
//       64-bit sequence number (1, 2, 3, ...) in its first 8 bytes, so two writes never leave the
//       same content. SIGSTOP/SIGCONT pause and resume it without a burst of catch-up writes.
//
// Exit status: 0 on success (--create) or SIGTERM/SIGINT (--file), 1 on an I/O error, 2 on a
// usage error.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "core/units.hpp"
#include "tests/tools/seeded_rng.hpp"

namespace {

constexpr std::size_t kPage = 4096;
constexpr const char* kProg = "hymig-test-writer";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_io(const std::string& what) {
  throw IoError(what + ": " + std::strerror(errno));
}

using hymig::test_tools::Rng;  // tests/tools/seeded_rng.hpp

// RAII owner of a mapping.
class Mapping {
 public:
  Mapping(int fd, std::size_t len, const std::string& path) : len_(len) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_io("mmap " + path + " (" + std::to_string(len) + " bytes, MAP_SHARED)");
    addr_ = static_cast<unsigned char*>(p);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr_) ::munmap(addr_, len_);
  }
  unsigned char* data() const { return addr_; }
  std::size_t size() const { return len_; }

 private:
  unsigned char* addr_ = nullptr;
  std::size_t len_ = 0;
};

void print_help(std::FILE* out) {
  std::fprintf(out,
               "usage:\n"
               "  %s --create PATH --size SIZE [--seed S] [--zero-fraction F]\n"
               "      create PATH with SIZE bytes (suffix K, M, G: powers of 1024) of pseudo-random\n"
               "      4 KiB pages, a fraction F (0..1, default 0) of them all-zero\n"
               "  %s --file PATH --pages-per-sec N [--seed S] [--working-set-pages W]\n"
               "      map PATH shared and, until killed, overwrite N random pages per second among\n"
               "      the first W pages (default: all); each write fills the whole page, with a\n"
               "      sequence number in its first 8 bytes\n"
               "  %s --help\n"
               "exit status: 0 ok (or SIGTERM/SIGINT in --file mode), 1 I/O error, 2 usage error\n",
               kProg, kProg, kProg);
}

std::uint64_t parse_u64(std::string_view flag, std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty())
    throw UsageError(std::string(flag) + ": '" + std::string(s) + "' is not a non-negative integer");
  return v;
}

// Sizes as the hymig command reads them (core/units.hpp), reported as usage errors.
std::uint64_t parse_size(std::string_view flag, std::string_view s) {
  try {
    return hymig::parse_size(s, flag);
  } catch (const hymig::Error& e) {
    throw UsageError(e.what());
  }
}

double parse_fraction(std::string_view flag, std::string_view s) {
  const std::string str(s);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(str.c_str(), &end);
  if (str.empty() || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 1.0))
    throw UsageError(std::string(flag) + ": '" + str + "' is not a number in [0, 1]");
  return v;
}

struct Options {
  std::optional<std::string> create, file;
  std::optional<std::uint64_t> size, pages_per_sec, working_set, seed;
  std::optional<double> zero_fraction;
  bool help = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string_view val;
    bool has_val = false;
    if (auto eq = a.find('='); a.starts_with("--") && eq != std::string_view::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_val = true;
    }
    auto value = [&]() -> std::string_view {
      if (has_val) return val;
      if (i + 1 >= argc) throw UsageError(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") o.help = true;
    else if (a == "--create") o.create = std::string(value());
    else if (a == "--file") o.file = std::string(value());
    else if (a == "--size") o.size = parse_size(a, value());
    else if (a == "--seed") o.seed = parse_u64(a, value());
    else if (a == "--zero-fraction") o.zero_fraction = parse_fraction(a, value());
    else if (a == "--pages-per-sec") o.pages_per_sec = parse_u64(a, value());
    else if (a == "--working-set-pages") o.working_set = parse_u64(a, value());
    else throw UsageError("unknown argument '" + std::string(argv[i]) + "' (see --help)");
  }
  if (o.help) return o;
  if (o.create.has_value() == o.file.has_value())
    throw UsageError("give exactly one of --create PATH or --file PATH (see --help)");
  if (o.create) {
    if (!o.size) throw UsageError("--create needs --size SIZE");
    if (o.pages_per_sec || o.working_set)
      throw UsageError("--pages-per-sec and --working-set-pages belong to --file mode");
  } else {
    if (!o.pages_per_sec) throw UsageError("--file needs --pages-per-sec N");
    if (o.size || o.zero_fraction) throw UsageError("--size and --zero-fraction belong to --create mode");
  }
  return o;
}

void write_all(int fd, const unsigned char* p, std::size_t n, std::uint64_t off, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_io("write " + path + " at offset " + std::to_string(off));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
}

int do_create(const Options& o) {
  const std::string& path = *o.create;
  const std::uint64_t size = *o.size;
  const double zf = o.zero_fraction.value_or(0.0);
  hymig::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw_io("create " + path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw_io("ftruncate " + path);

  Rng rng(o.seed.value_or(1));
  constexpr std::size_t kChunkPages = 256;  // 1 MiB per write
  std::vector<unsigned char> buf(kChunkPages * kPage);
  std::uint64_t zero_pages = 0;
  for (std::uint64_t off = 0; off < size;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
    for (std::size_t p = 0; p < n; p += kPage) {
      const std::size_t len = std::min(kPage, n - p);
      if (zf > 0.0 && rng.unit() < zf) {
        std::memset(buf.data() + p, 0, len);
        ++zero_pages;
      } else {
        rng.fill(buf.data() + p, len);
      }
    }
    write_all(fd.get(), buf.data(), n, off, path);
    off += n;
  }
  if (::close(fd.release()) != 0) throw_io("close " + path);
  std::fprintf(stderr, "%s: created %s: %llu bytes, %llu pages, %llu all-zero\n", kProg, path.c_str(),
               static_cast<unsigned long long>(size),
               static_cast<unsigned long long>((size + kPage - 1) / kPage),
               static_cast<unsigned long long>(zero_pages));
  return 0;
}

volatile sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

int do_write(const Options& o) {
  const std::string& path = *o.file;
  hymig::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) throw_io("open " + path + " read-write");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_io("stat " + path);
  const std::uint64_t pages = static_cast<std::uint64_t>(st.st_size) / kPage;
  if (pages == 0) throw UsageError(path + " is smaller than one page (" + std::to_string(kPage) + " bytes)");
  const std::uint64_t ws = o.working_set.value_or(pages);
  if (ws == 0 || ws > pages)
    throw UsageError("--working-set-pages " + std::to_string(ws) + " must be in [1, " + std::to_string(pages) +
                     "] (" + path + " has " + std::to_string(pages) + " whole pages)");
  const std::uint64_t rate = *o.pages_per_sec;
  Mapping map(fd.get(), static_cast<std::size_t>(pages * kPage), path);
  fd.reset();  // the mapping keeps the file

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::fprintf(stderr, "%s: pid %d writing %llu pages/s over the first %llu of %llu pages of %s\n", kProg,
               static_cast<int>(::getpid()), static_cast<unsigned long long>(rate),
               static_cast<unsigned long long>(ws), static_cast<unsigned long long>(pages), path.c_str());

  Rng rng(o.seed.value_or(1) ^ 0x5eed5eed5eedULL);
  std::uint64_t seq = 0;
  using Clock = std::chrono::steady_clock;
  const auto tick = std::chrono::milliseconds(1);
  // Writes are due at start + k / rate. If we fall far behind (SIGSTOP, a loaded machine), the
  // schedule restarts from now instead of bursting to catch up.
  auto start = Clock::now();
  std::uint64_t done = 0;
  while (!g_stop) {
    if (rate == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    auto due = static_cast<std::uint64_t>(elapsed * static_cast<double>(rate));
    if (due > done + rate / 10 + 1) {  // more than 100 ms behind: drop the backlog
      start = now;
      done = 0;
      due = 1;
    }
    for (; done < due && !g_stop; ++done) {
      unsigned char* page = map.data() + rng.below(ws) * kPage;
      rng.fill(page + 8, kPage - 8);
      ++seq;
      std::memcpy(page, &seq, 8);
    }
    std::this_thread::sleep_for(tick);
  }
  std::fprintf(stderr, "%s: stopped after %llu page writes\n", kProg, static_cast<unsigned long long>(seq));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (o.help) {
      print_help(stdout);
      return 0;
    }
    return o.create ? do_create(o) : do_write(o);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: usage error: %s\n", kProg, e.what());
    return 2;
  } catch (const IoError& e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
    return 1;
  }
}
