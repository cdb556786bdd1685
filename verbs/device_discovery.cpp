#include "verbs/device_discovery.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "core/error.hpp"

namespace hymig::verbs {

namespace {

using Gid = std::array<std::uint8_t, 16>;

constexpr std::uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const Gid& gid) { return std::memcmp(gid.data(), kV4MappedPrefix, 12) == 0; }

std::string v4_text(const Gid& gid) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, gid.data() + 12, buf, sizeof buf);
  return buf;
}

struct GidEntry {
  std::uint32_t index;
  Gid gid;
};

// RoCE v2 GIDs of one port. ibv_query_gid_table is one ioctl on current kernels (and reads sysfs
// itself on old ones); when even that fails, read sysfs directly, as rdma-core's own tools do.
std::vector<GidEntry> roce_v2_gids_from_sysfs(const std::string& device, std::uint8_t port, int table_len) {
  std::vector<GidEntry> out;
  const std::string base = "/sys/class/infiniband/" + device + "/ports/" + std::to_string(port);
  for (int i = 0; i < table_len; ++i) {
    std::ifstream type_file(base + "/gid_attrs/types/" + std::to_string(i));
    std::string type;
    if (!type_file || !std::getline(type_file, type)) continue;  // empty slots fail to read (EINVAL)
    if (type != "RoCE v2") continue;
    std::ifstream gid_file(base + "/gids/" + std::to_string(i));
    std::string text;
    if (!gid_file || !std::getline(gid_file, text)) continue;
    if (auto gid = gid_from_text(text); gid && *gid != Gid{}) out.push_back({std::uint32_t(i), *gid});
  }
  return out;
}

std::vector<GidEntry> roce_v2_gids(const std::string& device, std::uint8_t port, int table_len,
                                   const std::vector<ibv_gid_entry>& table, bool table_ok) {
  if (!table_ok) return roce_v2_gids_from_sysfs(device, port, table_len);
  std::vector<GidEntry> out;
  for (const ibv_gid_entry& e : table) {
    if (e.port_num != port || e.gid_type != IBV_GID_TYPE_ROCE_V2) continue;
    Gid g;
    std::memcpy(g.data(), e.gid.raw, 16);
    out.push_back({e.gid_index, g});
  }
  return out;
}

std::string link_layer_name(std::uint8_t link_layer) {
  return link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";  // UNSPECIFIED is legacy IB
}

// One pass over every device and port; `visit(device, port, attr, gids)` sees each port.
template <typename Visit>
void for_each_port(Visit&& visit) {
  int count = 0;
  DeviceListPtr list(ibv_get_device_list(&count));
  if (!list) return;  // no uverbs in the kernel (ENOSYS) or no devices: no ports
  for (int d = 0; d < count; ++d) {
    const std::string name = ibv_get_device_name(list.get()[d]);
    ContextPtr ctx(ibv_open_device(list.get()[d]));
    if (!ctx) continue;  // a device we may not open (permissions) is not a port we can use
    ibv_device_attr dev{};
    if (ibv_query_device(ctx.get(), &dev) != 0) continue;

    std::vector<ibv_port_attr> ports(dev.phys_port_cnt);
    std::size_t table_len = 0;
    for (std::uint8_t p = 1; p <= dev.phys_port_cnt; ++p) {
      if (ibv_query_port(ctx.get(), p, &ports[p - 1]) != 0) ports[p - 1] = ibv_port_attr{};
      table_len += std::size_t(ports[p - 1].gid_tbl_len);
    }
    std::vector<ibv_gid_entry> table(table_len);
    const ssize_t n = table_len ? ibv_query_gid_table(ctx.get(), table.data(), table.size(), 0) : 0;
    const bool table_ok = n >= 0;
    table.resize(table_ok ? std::size_t(n) : 0);

    for (std::uint8_t p = 1; p <= dev.phys_port_cnt; ++p) {
      const ibv_port_attr& attr = ports[p - 1];
      visit(name, p, attr, roce_v2_gids(name, p, attr.gid_tbl_len, table, table_ok));
    }
  }
}

}  // namespace

unsigned mtu_enum_to_bytes(int mtu_enum) {
  switch (mtu_enum) {
    case IBV_MTU_256: return 256;
    case IBV_MTU_512: return 512;
    case IBV_MTU_1024: return 1024;
    case IBV_MTU_2048: return 2048;
    case IBV_MTU_4096: return 4096;
    default: return 0;
  }
}

std::optional<ibv_mtu> mtu_bytes_to_enum(unsigned bytes) {
  switch (bytes) {
    case 256: return IBV_MTU_256;
    case 512: return IBV_MTU_512;
    case 1024: return IBV_MTU_1024;
    case 2048: return IBV_MTU_2048;
    case 4096: return IBV_MTU_4096;
    default: return std::nullopt;
  }
}

std::optional<Gid> ip_to_gid(const std::string& ip) {
  std::string_view text = ip;
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  const std::string s(text);
  Gid gid{};
  in_addr v4{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memcpy(gid.data(), kV4MappedPrefix, 12);
    std::memcpy(gid.data() + 12, &v4, 4);
    return gid;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(gid.data(), &v6, 16);
    return gid;
  }
  return std::nullopt;
}

std::string gid_to_text(const Gid& gid) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, gid.data(), buf, sizeof buf);
  return buf;
}

std::optional<Gid> gid_from_text(const std::string& text) {
  // 32 hex digits, optionally grouped by ':' every 4 (sysfs form)?
  std::string hex;
  bool only_hex = true;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      only_hex = false;
      break;
    }
    hex += c;
  }
  const bool grouped = text.size() == 39 && text[4] == ':' && text[9] == ':' && text[14] == ':' && text[19] == ':' &&
                       text[24] == ':' && text[29] == ':' && text[34] == ':';
  if (only_hex && hex.size() == 32 && (text.size() == 32 || grouped)) {
    Gid gid{};
    for (std::size_t i = 0; i < 16; ++i) gid[i] = std::uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return gid;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return std::nullopt;
  Gid gid{};
  std::memcpy(gid.data(), &v6, 16);
  return gid;
}

std::vector<RdmaPortInfo> list_ports() {
  std::vector<RdmaPortInfo> out;
  for_each_port([&](const std::string& device, std::uint8_t port, const ibv_port_attr& attr,
                    const std::vector<GidEntry>& gids) {
    RdmaPortInfo info{device, port, attr.state == IBV_PORT_ACTIVE, link_layer_name(attr.link_layer),
                      mtu_enum_to_bytes(attr.active_mtu), {}};
    for (const GidEntry& g : gids)
      if (is_v4_mapped(g.gid)) info.roce_v2_ipv4.push_back(v4_text(g.gid));
    out.push_back(std::move(info));
  });
  return out;
}

std::optional<RoceAddress> find_roce_gid(const std::string& local_ip) {
  const std::optional<Gid> want = ip_to_gid(local_ip);
  if (!want) return std::nullopt;
  std::optional<RoceAddress> found;
  for_each_port([&](const std::string& device, std::uint8_t port, const ibv_port_attr& attr,
                    const std::vector<GidEntry>& gids) {
    for (const GidEntry& g : gids) {
      if (g.gid != *want) continue;
      RoceAddress a;
      a.device = device;
      a.port = port;
      a.gid_index = int(g.index);
      a.gid = g.gid;
      a.active_mtu = mtu_enum_to_bytes(attr.active_mtu);
      a.active = attr.state == IBV_PORT_ACTIVE;
      a.link_layer = link_layer_name(attr.link_layer);
      // An active port wins over an inactive one holding the same address.
      if (!found || (a.active && !found->active)) found = a;
    }
  });
  return found;
}

std::optional<RoceAddress> find_roce_port(const std::string& local_ip) {
  std::optional<RoceAddress> a = find_roce_gid(local_ip);
  if (a && !a->active) return std::nullopt;
  return a;
}

ContextPtr open_device(const std::string& name) {
  int count = 0;
  DeviceListPtr list(ibv_get_device_list(&count));
  if (!list) throw_errno("cannot list RDMA devices to open " + name + " (is ib_uverbs loaded?)");
  for (int d = 0; d < count; ++d) {
    if (name != ibv_get_device_name(list.get()[d])) continue;
    ContextPtr ctx(ibv_open_device(list.get()[d]));
    if (!ctx) throw_errno("cannot open RDMA device " + name + " (permissions on /dev/infiniband/uverbs*?)");
    return ctx;
  }
  throw Error(ErrorKind::io, "RDMA device " + name + " has disappeared (rdma link show)");
}

}  // namespace hymig::verbs
