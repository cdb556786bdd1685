#include "policy/rate_memory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/unique_fd.hpp"

namespace hymig {
namespace {

namespace fs = std::filesystem;

struct Entry {
  RateMemoryKey key;
  std::uint64_t bytes_per_s = 0;
  double unix_time = 0;
};

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

bool same(const RateMemoryKey& a, const RateMemoryKey& b) {
  return a.peer == b.peer && a.bulk == b.bulk && a.lanes == b.lanes;
}

// Reads the entries; a malformed entry is skipped, a malformed file yields none and a warning.
std::vector<Entry> read_entries(const fs::path& file, std::string* warning) {
  std::vector<Entry> out;
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) {
    if (ec != std::errc::no_such_file_or_directory && warning)
      *warning = "cannot read " + file.string() + ": " + ec.message();
    return out;
  }
  if (size > RateMemory::kMaxFileBytes) {
    if (warning) *warning = file.string() + " is larger than 1 MiB: not a rate memory; ignored";
    return out;
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) {
    if (warning) *warning = "cannot read " + file.string();
    return out;
  }
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1 || !j.contains("entries") ||
      !j["entries"].is_array()) {
    if (warning) *warning = file.string() + " is not a hymig rate memory (version 1); ignored";
    return out;
  }
  for (const auto& e : j["entries"]) {
    if (!e.is_object()) continue;
    const auto peer = e.find("peer"), bulk = e.find("bulk"), lanes = e.find("lanes"), rate = e.find("bytes_per_s"),
               time = e.find("unix_time");
    if (peer == e.end() || !peer->is_string() || peer->get_ref<const std::string&>().size() > 64) continue;
    if (bulk == e.end() || !bulk->is_string() || bulk->get_ref<const std::string&>().size() > 8) continue;
    if (lanes == e.end() || !lanes->is_number_unsigned() || *lanes == 0 || *lanes > 64) continue;
    if (rate == e.end() || !rate->is_number_unsigned() || *rate == 0) continue;
    if (time == e.end() || !time->is_number()) continue;
    out.push_back({{peer->get<std::string>(), bulk->get<std::string>(), lanes->get<std::uint32_t>()},
                   rate->get<std::uint64_t>(),
                   time->get<double>()});
    if (out.size() > 4 * RateMemory::kMaxEntries) break;
  }
  return out;
}

}  // namespace

fs::path RateMemory::default_path() {
  if (const char* d = std::getenv("HYMIG_STATE_DIR"); d && *d) return fs::path(d) / "peer-rates.json";
  if (::geteuid() == 0) return "/var/lib/hymig/peer-rates.json";
  if (const char* d = std::getenv("XDG_STATE_HOME"); d && *d == '/') return fs::path(d) / "hymig" / "peer-rates.json";
  if (const char* h = std::getenv("HOME"); h && *h == '/') return fs::path(h) / ".local/state/hymig/peer-rates.json";
  return {};
}

std::optional<RateMemory::Recalled> RateMemory::recall(const RateMemoryKey& key,
                                                       std::chrono::system_clock::time_point now,
                                                       std::string* warning) const {
  const double t = unix_seconds(now);
  std::optional<Recalled> best;
  for (const Entry& e : read_entries(file_, warning)) {
    if (!same(e.key, key)) continue;
    const double age = t - e.unix_time;
    if (age < -300 || age > kMaxAgeSeconds) continue;  // from the future (a clock step) or too old
    if (!best || age < best->age_s) best = Recalled{e.bytes_per_s, std::max(0.0, age)};
  }
  return best;
}

std::string RateMemory::remember(const RateMemoryKey& key, std::uint64_t bytes_per_s,
                                 std::chrono::system_clock::time_point now) const {
  if (file_.empty()) return "no state directory (set HYMIG_STATE_DIR)";
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  if (ec) return "cannot create " + file_.parent_path().string() + ": " + ec.message();
  const fs::path lock_path = file_.string() + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock) return "cannot open " + lock_path.string() + ": " + std::strerror(errno);
  if (::flock(lock.get(), LOCK_EX) != 0) return "cannot lock " + lock_path.string() + ": " + std::strerror(errno);

  std::vector<Entry> entries = read_entries(file_, nullptr);
  const double t = unix_seconds(now);
  std::erase_if(entries, [&](const Entry& e) { return same(e.key, key) || t - e.unix_time > kMaxAgeSeconds; });
  entries.push_back({key, bytes_per_s, t});
  if (entries.size() > kMaxEntries) {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.unix_time > b.unix_time; });
    entries.resize(kMaxEntries);
  }
  nlohmann::json j = {{"version", 1}, {"entries", nlohmann::json::array()}};
  for (const Entry& e : entries)
    j["entries"].push_back({{"peer", e.key.peer},
                            {"bulk", e.key.bulk},
                            {"lanes", e.key.lanes},
                            {"bytes_per_s", e.bytes_per_s},
                            {"unix_time", e.unix_time}});
  const std::string text = j.dump(1) + "\n";
  const fs::path tmp = file_.string() + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!out) return "cannot write " + tmp.string() + ": " + std::strerror(errno);
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(out.get(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string why = std::strerror(errno);
        ::unlink(tmp.c_str());
        return "cannot write " + tmp.string() + ": " + why;
      }
      done += static_cast<std::size_t>(n);
    }
  }
  if (::rename(tmp.c_str(), file_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return "cannot replace " + file_.string() + ": " + why;
  }
  return {};
}

}  // namespace hymig
