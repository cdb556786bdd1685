// Which RDMA ports this host has, and which one answers for a given local IP address.
//
// RoCE v2 carries RDMA in UDP/IP, so an RDMA endpoint is chosen by IP address: the port whose GID
// table holds that address as a RoCE v2 GID (IPv4 appears in its IPv4-mapped IPv6 form
// ::ffff:a.b.c.d). GID indexes differ between devices, kernels and address orders, so they are
// always looked up, never assumed.
//
// Nothing here throws for "no RDMA": a host without devices, without the uverbs module or without
// a provider library simply has no ports.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

struct RoceAddress {            // an RDMA port reachable at a local IPv4/IPv6 address
  std::string device;           // "rxe0", "mlx5_0"
  std::uint8_t port = 1;
  int gid_index = -1;           // RoCE v2 GID whose address is the given IP
  std::array<std::uint8_t, 16> gid{};
  unsigned active_mtu = 0;      // bytes: 256..4096 (ibv_mtu enum converted)
  bool active = false;          // port state ACTIVE
  std::string link_layer;       // "Ethernet" / "InfiniBand"
};

struct RdmaPortInfo {
  std::string device;
  std::uint8_t port;
  bool active;
  std::string link_layer;
  unsigned active_mtu;                     // bytes
  std::vector<std::string> roce_v2_ipv4;   // dotted IPv4 addresses with a RoCE v2 GID on this port
};

// Every port of every device; empty (no throw) when there is no device or no provider.
std::vector<RdmaPortInfo> list_ports();

// The active port with a RoCE v2 GID equal to `local_ip` (IPv4 dotted or IPv6 text, brackets
// allowed); std::nullopt when none, or when `local_ip` is not a numeric address.
std::optional<RoceAddress> find_roce_port(const std::string& local_ip);

// Same lookup without the "active" filter, so a caller can tell "no such GID" from "port down".
std::optional<RoceAddress> find_roce_gid(const std::string& local_ip);

// ibv_mtu enum value (IBV_MTU_256 = 1 .. IBV_MTU_4096 = 5) <-> bytes. 0 / std::nullopt for values
// outside the enum.
unsigned mtu_enum_to_bytes(int mtu_enum);
std::optional<ibv_mtu> mtu_bytes_to_enum(unsigned bytes);

// The 16-byte GID form of a numeric IP address (IPv4 becomes ::ffff:a.b.c.d); std::nullopt if the
// text is not a numeric IPv4/IPv6 address. Surrounding brackets are accepted.
std::optional<std::array<std::uint8_t, 16>> ip_to_gid(const std::string& ip);

// GID as IPv6 text ("::ffff:10.9.0.1", "fe80::1") and back. gid_from_text also takes 32 hex digits
// (with or without ':' every 4, as sysfs prints them).
std::string gid_to_text(const std::array<std::uint8_t, 16>& gid);
std::optional<std::array<std::uint8_t, 16>> gid_from_text(const std::string& text);

// Opens the device named `name` ("rxe0"). Throws Error{io} naming the device when it is absent or
// cannot be opened.
ContextPtr open_device(const std::string& name);

}  // namespace hymig::verbs
