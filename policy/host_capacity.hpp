// What a destination can take now: its memory (regular and per huge page size), the free space of
// the file system its domains' RAM files live on, and the migrations it is receiving. A daemon
// reports it on an authenticated status query (`hymig status`); `hymig drain` places domains by it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig {

struct HugePagePool {
  std::uint64_t page_bytes = 0;
  std::uint64_t total = 0, free = 0;  // pages
};

struct HostCapacity {
  std::uint64_t memory_total = 0;
  std::uint64_t memory_available = 0;          // /proc/meminfo MemAvailable
  std::vector<HugePagePool> hugepages;         // one per size the kernel offers
  std::optional<std::uint64_t> ram_files_free; // free space where domains' RAM files go (a tmpfs), if known
  std::uint64_t max_image_bytes = 0;           // the daemon's --max-image-bytes
  unsigned max_incoming = 0, incoming = 0;     // its --max-incoming, and the migrations it receives now
  std::uint64_t incoming_bytes = 0;            // their images' sizes: memory they are about to take
  bool libvirt = false;                        // it takes libvirt domains (serve --libvirt)
};

// This host's memory and huge pages from `proc` (/proc/meminfo) and `sys`
// (/sys/kernel/mm/hugepages). Fields it cannot read stay 0. Paths are parameters for tests.
HostCapacity probe_host_memory(const std::filesystem::path& proc = "/proc", const std::filesystem::path& sys = "/sys");

// Free bytes of the smallest file system among `dirs` (that exist), or nullopt when none exists.
std::optional<std::uint64_t> free_space_of(const std::vector<std::string>& dirs);

// Bytes of a domain's RAM (on huge pages of `hugepage_bytes`, 0: regular memory) the host can take
// on top of its incoming migrations; `headroom` is kept free for the host itself.
std::uint64_t room_for(const HostCapacity& c, std::uint64_t hugepage_bytes, std::uint64_t headroom);

nlohmann::json to_json(const HostCapacity& c);
// From a daemon's answer: every field checked (types, ranges); Error{protocol} naming the field.
HostCapacity capacity_from_json(const nlohmann::json& j);

}  // namespace hymig
