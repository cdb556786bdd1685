#!/usr/bin/env bash
# Installs every Debian package hymig needs to build, test and demo on a fresh machine.
# Idempotent: packages already present are skipped, so a second run costs a dpkg query.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # the fuzz lane: clang with libFuzzer and the sanitizers' runtimes; the lint lane (scripts/lint.sh)
  clang libclang-rt-14-dev clang-format clang-tidy shellcheck
  # libraries
  libboost-program-options-dev libxxhash-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  libsodium-dev libssl-dev nettle-dev libzstd-dev libxml2-dev libgtest-dev libgmock-dev libbenchmark-dev
  # the daemon as a service: readiness notification (Type=notify), its metrics endpoint
  libsystemd-dev libmicrohttpd-dev
  # the package test: systemd-analyze verify of the unit (it looks its man pages up with man), and the
  # unit started under systemd in a container booted from this host's OS (systemd-nspawn)
  systemd man-db systemd-container
  # the Slurm lane: real slurmctld, slurmd and munged started by the test (contrib/slurm's hook)
  slurm-wlm munge
  # integration lane: namespaces, loss, rate limits, process tools
  iproute2 nftables procps psmisc util-linux jq curl
  # the security tests' packet capture (no page content may cross in clear)
  tcpdump
  # benchmark suite: MPI launch, the UDT and iperf3 peers, plots
  libopenmpi-dev openmpi-bin libudt-dev iperf3 gnuplot-nox
  # RDMA backends (verbs/) and the Soft-RoCE lab: QEMU (TCG), a static busybox for the initramfs,
  # the rxe provider; the guest kernel is fetched by name at test time (apt-get download), never installed
  libibverbs-dev librdmacm-dev ibverbs-providers qemu-system-x86 busybox-static
  # libvirt domains (vm/: the C API and its QEMU passthrough) and the vm lane's two private libvirt daemons
  libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
  # the lab's self-test of its RDMA devices: ibv_devinfo, ibv_ud_pingpong, ibv_rc_pingpong (copied into the guest)
  ibverbs-utils
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
