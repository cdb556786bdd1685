// What earlier sessions carried to each peer, so that the next one starts its pacer there instead
// of climbing from a fraction of the link speed (docs/protocol.md, "Pacing").
//
// One small JSON file on the source (default: $HYMIG_STATE_DIR, else /var/lib/hymig as root, else
// $XDG_STATE_HOME/hymig or ~/.local/state/hymig; peer-rates.json). Entries are keyed by the peer's
// address, the bulk transport and the lane count, expire after 30 days, and at most 256 are kept
// (the oldest go). Writers lock a sibling file and replace the file atomically, so the migrations
// of a node drain may finish at once. The file is a hint: a missing, unreadable or malformed one
// is reported once and ignored, never a reason to fail a migration.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace hymig {

struct RateMemoryKey {
  std::string peer;  // the peer's numeric address
  std::string bulk;  // udp or ud
  std::uint32_t lanes = 1;
};

class RateMemory {
 public:
  explicit RateMemory(std::filesystem::path file) : file_(std::move(file)) {}

  // The default file for this user (see above); empty when no directory can be named.
  static std::filesystem::path default_path();

  struct Recalled {
    std::uint64_t bytes_per_s = 0;
    double age_s = 0;
  };
  // The remembered rate, if one younger than 30 days is there. `warning` gets a sentence when the
  // file exists but cannot be used.
  std::optional<Recalled> recall(const RateMemoryKey& key, std::chrono::system_clock::time_point now,
                                 std::string* warning = nullptr) const;

  // Stores `bytes_per_s` for `key`. Returns an empty string, or why it could not be stored.
  std::string remember(const RateMemoryKey& key, std::uint64_t bytes_per_s,
                       std::chrono::system_clock::time_point now) const;

  const std::filesystem::path& file() const { return file_; }

  static constexpr std::size_t kMaxEntries = 256;
  static constexpr double kMaxAgeSeconds = 30 * 86400.0;
  static constexpr std::uintmax_t kMaxFileBytes = 1 << 20;

 private:
  std::filesystem::path file_;
};

}  // namespace hymig
