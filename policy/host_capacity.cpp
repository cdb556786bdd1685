#include "policy/host_capacity.hpp"

#include <sys/statvfs.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace hymig {
namespace {

std::uint64_t read_number(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::uint64_t v = 0;
  return in >> v ? v : 0;
}

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorKind::protocol, "capacity: " + what); }

std::uint64_t u64(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) bad(std::string("field '") + key + "' must be an unsigned number");
  return it->get<std::uint64_t>();
}

std::uint64_t minus(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

HostCapacity probe_host_memory(const std::filesystem::path& proc, const std::filesystem::path& sys) {
  HostCapacity c;
  std::ifstream in(proc / "meminfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    std::uint64_t kib = 0;
    if (!(ls >> key >> kib)) continue;
    if (key == "MemTotal:") c.memory_total = kib * 1024;
    if (key == "MemAvailable:") c.memory_available = kib * 1024;
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(sys / "kernel/mm/hugepages", ec)) {
    // hugepages-2048kB
    const std::string n = e.path().filename().string();
    if (n.rfind("hugepages-", 0) != 0 || n.size() < 13 || n.substr(n.size() - 2) != "kB") continue;
    HugePagePool p;
    p.page_bytes = std::strtoull(n.c_str() + 10, nullptr, 10) * 1024;
    if (!p.page_bytes) continue;
    p.total = read_number(e.path() / "nr_hugepages");
    p.free = read_number(e.path() / "free_hugepages");
    c.hugepages.push_back(p);
  }
  std::sort(c.hugepages.begin(), c.hugepages.end(), [](auto& a, auto& b) { return a.page_bytes < b.page_bytes; });
  return c;
}

std::optional<std::uint64_t> free_space_of(const std::vector<std::string>& dirs) {
  std::optional<std::uint64_t> out;
  for (const auto& d : dirs) {
    struct statvfs fs {};
    if (::statvfs(d.c_str(), &fs) != 0) continue;
    const std::uint64_t f = std::uint64_t(fs.f_bavail) * fs.f_frsize;
    out = out ? std::min(*out, f) : f;
  }
  return out;
}

std::uint64_t room_for(const HostCapacity& c, std::uint64_t hugepage_bytes, std::uint64_t headroom) {
  // Incoming migrations are counted as if each were already there in full: conservative while
  // they are half-way (their pages written so far are counted twice), never optimistic.
  if (hugepage_bytes) {
    for (const auto& p : c.hugepages)
      if (p.page_bytes == hugepage_bytes) return minus(p.free * p.page_bytes, c.incoming_bytes);
    return 0;
  }
  std::uint64_t room = minus(c.memory_available, headroom);
  if (c.ram_files_free) room = std::min(room, *c.ram_files_free);
  return std::min(minus(room, c.incoming_bytes), c.max_image_bytes);
}

nlohmann::json to_json(const HostCapacity& c) {
  nlohmann::json huge = nlohmann::json::array();
  for (const auto& p : c.hugepages) huge.push_back({{"page_bytes", p.page_bytes}, {"total", p.total}, {"free", p.free}});
  nlohmann::json j = {{"memory_total", c.memory_total}, {"memory_available", c.memory_available}, {"hugepages", huge},
                      {"max_image_bytes", c.max_image_bytes}, {"max_incoming", c.max_incoming},
                      {"incoming", c.incoming}, {"incoming_bytes", c.incoming_bytes}, {"libvirt", c.libvirt}};
  if (c.ram_files_free) j["ram_files_free"] = *c.ram_files_free;
  return j;
}

HostCapacity capacity_from_json(const nlohmann::json& j) {
  if (!j.is_object()) bad("must be an object");
  HostCapacity c;
  c.memory_total = u64(j, "memory_total");
  c.memory_available = u64(j, "memory_available");
  c.max_image_bytes = u64(j, "max_image_bytes");
  c.incoming_bytes = u64(j, "incoming_bytes");
  const std::uint64_t max_in = u64(j, "max_incoming"), in = u64(j, "incoming");
  if (max_in > 1024 || in > 1024) bad("incoming counts out of range");
  c.max_incoming = unsigned(max_in);
  c.incoming = unsigned(in);
  if (j.contains("ram_files_free")) c.ram_files_free = u64(j, "ram_files_free");
  const auto lv = j.find("libvirt");
  if (lv == j.end() || !lv->is_boolean()) bad("field 'libvirt' must be true or false");
  c.libvirt = lv->get<bool>();
  const auto huge = j.find("hugepages");
  if (huge == j.end() || !huge->is_array() || huge->size() > 8) bad("field 'hugepages' must be a list of at most 8 pools");
  for (const auto& h : *huge) {
    if (!h.is_object()) bad("a huge page pool must be an object");
    HugePagePool p{u64(h, "page_bytes"), u64(h, "total"), u64(h, "free")};
    if (p.page_bytes == 0 || p.page_bytes > (16ull << 30) || p.free > p.total || p.total > (1ull << 40) / p.page_bytes)
      bad("a huge page pool is out of range");
    c.hugepages.push_back(p);
  }
  return c;
}

}  // namespace hymig
