// hymig-vm-watch DIR: follows every *.serial file in DIR (files that appear later too) and prints
// each complete line as it arrives, as "<ms> <file> <line>": ms = CLOCK_MONOTONIC milliseconds
// (three decimals) when the line was seen. Polls every millisecond, so the arrival times of a
// guest's console lines measure a blackout to about a millisecond: the guest's own clock stops
// while it is paused. A line split between two files (a guest paused mid-line) prints as two
// fragments. Runs until killed.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace {

struct Followed {
  int fd = -1;
  off_t offset = 0;
  std::string partial;
};

double now_ms() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hymig-vm-watch DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::map<std::string, Followed> files;
  char buf[65536];
  for (unsigned iter = 0;; ++iter) {
    if (iter % 20 == 0) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        if (e.path().extension() != ".serial" || files.count(name)) continue;
        const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) files[name].fd = fd;
      }
    }
    bool printed = false;
    for (auto& [name, f] : files) {
      while (true) {
        const ssize_t n = ::pread(f.fd, buf, sizeof buf, f.offset);
        if (n <= 0) break;
        f.offset += n;
        f.partial.append(buf, static_cast<std::size_t>(n));
      }
      std::size_t start = 0, nl;
      const double t = now_ms();
      while ((nl = f.partial.find('\n', start)) != std::string::npos) {
        std::string line = f.partial.substr(start, nl - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::printf("%.3f %s %s\n", t, name.c_str(), line.c_str());
        printed = true;
        start = nl + 1;
      }
      f.partial.erase(0, start);
    }
    if (printed) std::fflush(stdout);
    usleep(1000);
  }
}
