// `hymig serve`'s options and what they become: the daemon's settings, checked without touching
// the host (no socket, no file, no key read), so the same code serves the command line, the config
// file and the config fuzzer (fuzz/config_file.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/program_options.hpp>

#include "security/cluster_key.hpp"
#include "vm/libvirt_image.hpp"
#include "vm/vm_image.hpp"

namespace hymig::cli {

namespace po = boost::program_options;

struct ServeConfig {
  std::string listen;                     // HOST:PORT, checked for shape (resolved when bound)
  std::optional<std::string> metrics;     // HOST:PORT of the metrics endpoint, when asked for
  ClusterKey key;
  std::string key_file;  // where it was read: a drain this daemon runs reads it too
  std::string store;
  std::string vm_qmp;
  vm::RamFileRule vm_qmp_ram = vm::plain_qemu_ram_rule();  // where the --vm-qmp QEMU's RAM file may be
  bool libvirt = false;
  vm::LibvirtTargetOptions lv;
  bool once = false;
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds handshake_timeout{5000};
  unsigned max_handshakes = 16;
  unsigned max_incoming = 2;
  std::uint64_t max_image_bytes = 0;
  std::optional<std::uint64_t> store_reserve;  // unset: 5 % of the store's file system, at most 1 GiB
  bool allow_synthetic = false;
  bool prefault = true;  // populate the target ahead of round 0's stream
  bool replace = false;
};

// Every serve option but --config, --help and the key options.
void add_serve_options(po::options_description& desc);

// The settings `vm` (parsed with add_serve_options' description) asks for, every value checked:
// Error{usage} naming the option. The key is not read here (load_key).
ServeConfig serve_config_from(const po::variables_map& vm);

}  // namespace hymig::cli
