#include "cli/serve_config.hpp"

#include <unistd.h>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/units.hpp"
#include "vm/domain_policy.hpp"

namespace hymig::cli {
namespace {

std::uint64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? std::uint64_t(pages) * std::uint64_t(size) : 0;
}

}  // namespace

void add_serve_options(po::options_description& desc) {
  // One option per entry, as --help lists them.
  // clang-format off
  desc.add_options()
      ("listen", po::value<std::string>()->default_value("0.0.0.0:7470"), "HOST:PORT to accept sources on (port 0: any free port)")
      ("store", po::value<std::string>()->default_value("/var/lib/hymig/images"), "directory where file images land (created if missing)")
      ("replace", po::bool_switch(), "let an arriving file image replace one of the same name in the store (refused by default)")
      ("store-reserve", po::value<std::string>(), "free space the store keeps: an image that would leave less is refused (default: 5 % of the store's file system, at most 1G)")
      ("max-image-bytes", po::value<std::string>(), "largest image accepted (default: this host's RAM)")
      ("allow-synthetic", po::bool_switch(), "accept synthetic images (held in memory, then dropped): for tests and benchmarks")
      ("vm-qmp", po::value<std::string>(), "QMP socket of the QEMU that receives a VM (started with -incoming defer); without it VM images are refused")
      ("libvirt", po::bool_switch(), "receive libvirt domains (the source ran `hymig migrate --domain`) into this host's libvirt")
      ("connect", po::value<std::string>(), "with --libvirt: this host's libvirt URI (default: libvirt's own default, e.g. qemu:///system)")
      ("vm-runtime-dir", po::value<std::string>()->default_value("/run/hymig"), "with --libvirt: directory for the QMP sockets hymig adds to incoming domains")
      ("allow-path", po::value<std::vector<std::string>>()->composing()->value_name("DIR"),
       "with --libvirt: a host directory (or single file or device) whose files an incoming domain may use: disks, filesystems, "
       "serial/console/channel files and sockets, kernel, initrd, firmware and NVRAM, ... (repeatable; none by default; "
       "typically /var/lib/libvirt/images). Any incoming domain may use any file there")
      ("allow-pool", po::value<std::vector<std::string>>()->composing()->value_name("NAME"),
       "with --libvirt: a libvirt storage pool whose volumes an incoming domain may use (repeatable; none by default)")
      ("allow-emulator", po::value<std::vector<std::string>>()->composing()->value_name("PATH"),
       "with --libvirt: an emulator an incoming domain may name besides this libvirt's defaults (from its capabilities), "
       "e.g. /usr/libexec/qemu-kvm for domains from RHEL hosts (repeatable)")
      ("allow-hostdev", po::bool_switch(),
       "with --libvirt: let an incoming domain take host devices (<hostdev>, <redirdev>, host NVMe, TPM, input devices, "
       "smartcard readers); refused by default")
      ("allow-qemu-args", po::bool_switch(),
       "with --libvirt: let an incoming domain carry qemu: namespace elements (<qemu:commandline> arguments, "
       "<qemu:override>, ...), which run QEMU as the peer says; refused by default")
      ("allow-network-disks", po::bool_switch(),
       "with --libvirt: let an incoming domain use network disks (<disk type='network'>: NBD, iSCSI, RBD, ... at a server "
       "the peer names, with any libvirt secret it names); refused by default")
      ("memory-backing-dir", po::value<std::vector<std::string>>()->composing()->value_name("DIR"),
       "with --libvirt: where this libvirt keeps its domains' RAM files (qemu.conf memory_backing_dir; add its hugetlbfs "
       "mount for domains on huge pages); an incoming domain's RAM file is used only if it is a regular file below one "
       "(repeatable; default /var/lib/libvirt/qemu/ram). With --vm-qmp: where that QEMU's RAM file may be (default "
       "/dev/shm and /dev/hugepages)")
      ("no-prefault", po::bool_switch(),
       "do not populate an arriving image's memory ahead of its page stream (on by default: where first touches of "
       "memory are slow, the receiving thread would wait in them; only pages that will carry data are populated). "
       "For measurements")
      ("once", po::bool_switch(), "exit after one authenticated session: 0 if it committed, 1 otherwise")
      ("timeout", po::value<double>()->default_value(10.0), "seconds a source may stay silent before its session is dropped")
      ("handshake-timeout", po::value<double>()->default_value(5.0), "seconds a new connection has to authenticate, in all")
      ("max-handshakes", po::value<unsigned>()->default_value(16), "connections authenticating at once; more are closed at once")
      ("metrics", po::value<std::string>()->value_name("HOST:PORT"),
       "serve Prometheus metrics at http://HOST:PORT/metrics (migrations by outcome, bytes, running ones' remaining bytes and "
       "dirty rate, blackout and total-time histograms, datagrams dropped by reason); off by default. Bind it to a management "
       "address: it needs no key")
      ("max-incoming", po::value<unsigned>()->default_value(2),
       "migrations received at once; an authenticated source beyond them waits up to --timeout for one to end, then is "
       "refused as busy. Store space and synthetic images' memory are counted over all of them");
  // clang-format on
}

ServeConfig serve_config_from(const po::variables_map& vm) {
  ServeConfig cfg;
  cfg.timeout = timeout_option(vm, "timeout");
  cfg.handshake_timeout = timeout_option(vm, "handshake-timeout");
  cfg.max_handshakes = vm["max-handshakes"].as<unsigned>();
  if (cfg.max_handshakes == 0) throw Error(ErrorKind::usage, "--max-handshakes must be at least 1");
  cfg.max_incoming = vm["max-incoming"].as<unsigned>();
  if (cfg.max_incoming == 0 || cfg.max_incoming > 64) throw Error(ErrorKind::usage, "--max-incoming must be 1..64");
  cfg.max_image_bytes = vm.count("max-image-bytes") ? parse_size(vm["max-image-bytes"].as<std::string>(), "--max-image-bytes")
                                                    : physical_memory();
  if (vm.count("store-reserve")) cfg.store_reserve = parse_size(vm["store-reserve"].as<std::string>(), "--store-reserve");
  cfg.allow_synthetic = vm["allow-synthetic"].as<bool>();
  cfg.replace = vm["replace"].as<bool>();
  cfg.store = vm["store"].as<std::string>();
  cfg.once = vm["once"].as<bool>();
  cfg.prefault = !vm["no-prefault"].as<bool>();
  cfg.vm_qmp = vm.count("vm-qmp") ? vm["vm-qmp"].as<std::string>() : std::string();
  cfg.libvirt = vm["libvirt"].as<bool>();
  if (!cfg.libvirt && vm.count("connect")) throw Error(ErrorKind::usage, "--connect goes with --libvirt");
#ifndef HYMIG_HAVE_LIBVIRT
  if (cfg.libvirt)
    throw Error(ErrorKind::usage,
                "--libvirt: this hymig was built without libvirt (HYMIG_WITH_LIBVIRT=OFF); rebuild with libvirt-dev "
                "installed, or receive QMP guests with --vm-qmp");
#endif
  cfg.lv.uri = vm.count("connect") ? vm["connect"].as<std::string>() : std::string();
  cfg.lv.runtime_dir = vm["vm-runtime-dir"].as<std::string>();
  if (cfg.lv.runtime_dir.empty() || cfg.lv.runtime_dir[0] != '/')
    throw Error(ErrorKind::usage, "--vm-runtime-dir must be an absolute path");
  const auto strings = [&vm](const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>();
  };
  cfg.lv.policy.allowed_paths = strings("allow-path");
  cfg.lv.policy.allowed_pools = strings("allow-pool");
  cfg.lv.policy.allowed_emulators = strings("allow-emulator");
  cfg.lv.policy.allow_hostdev = vm["allow-hostdev"].as<bool>();
  cfg.lv.policy.allow_qemu_args = vm["allow-qemu-args"].as<bool>();
  cfg.lv.policy.allow_network_disks = vm["allow-network-disks"].as<bool>();
  vm::validate_domain_policy(cfg.lv.policy);
  if (vm.count("memory-backing-dir")) {
    cfg.lv.memory_backing_dirs = strings("memory-backing-dir");
    cfg.vm_qmp_ram.dirs = cfg.lv.memory_backing_dirs;
  }
  for (const auto& d : cfg.lv.memory_backing_dirs)
    if (!vm::normalize_absolute_path(d))
      throw Error(ErrorKind::usage, "--memory-backing-dir '" + d + "': give an absolute path without '..'");
  cfg.listen = vm["listen"].as<std::string>();
  split_host_port(cfg.listen);
  if (vm.count("metrics")) {
    cfg.metrics = vm["metrics"].as<std::string>();
    split_host_port(*cfg.metrics);
  }
  return cfg;
}

}  // namespace hymig::cli
