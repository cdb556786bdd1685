#!/usr/bin/env bash
# build-initramfs.sh BUILD_DIR OUT: the initramfs of hymig's Soft-RoCE lab guest.
#
# Holds: busybox-static (every applet), the host's iproute2 `ip`, `tc`, `rdma`, `jq` and (where
# installed) ibverbs-utils' ibv_devinfo, ibv_ud_pingpong, ibv_rc_pingpong; hymig's
# binaries from BUILD_DIR (cli/hymig, tests/hymig_unit_tests, tests/tools/hymig-test-writer; those
# present), stripped; every shared library `ldd` lists for them; libibverbs' rxe provider and its
# driver file; the kernel modules of the lab with their `depends=` closure and a busybox depmod;
# tests/lab/guest-init as /init and tests/lab/guest/*.sh under /lab. One image serves every guest
# script: the kernel command line (lab.run=NAME) picks which one runs.
#
# The kernel comes from $HYMIG_LAB_KERNEL_DIR (an unpacked linux-image) or from fetch-kernel.sh with
# the cache $HYMIG_LAB_CACHE (default BUILD_DIR/lab-cache); its directory is written to OUT.kernel.
# OUT is rebuilt only when an input changed (a digest of names, sizes and mtimes in OUT.stamp).
# Exit 0: OUT is current; 77: no kernel can be had (reason on stderr); other: an error.
set -euo pipefail

say() { printf 'build-initramfs: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
[ $# -eq 2 ] || { say "usage: $0 BUILD_DIR OUT"; exit 2; }
build=$(cd "$1" && pwd) || die "no build directory $1"
out=$2
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
here=$(cd "$(dirname "$0")" && pwd)
ma=x86_64-linux-gnu

# One build at a time per OUT (two lab runs may share a build directory).
exec {lock_fd}>"$out.lock"
flock -w 600 "$lock_fd" || die "could not lock $out.lock within 600 s"

# ---- inputs ----
kdir=${HYMIG_LAB_KERNEL_DIR:-}
if [ -z "$kdir" ]; then
  rc=0
  kdir=$(bash "$here/fetch-kernel.sh" "${HYMIG_LAB_CACHE:-$build/lab-cache}") || rc=$?
  [ "$rc" -eq 0 ] || exit "$rc"
fi
vmlinuz=$(find "$kdir/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kdir"
kver=${vmlinuz##*/vmlinuz-}
modsrc=$kdir/lib/modules/$kver
[ -d "$modsrc" ] || modsrc=$kdir/usr/lib/modules/$kver
[ -d "$modsrc" ] || die "no lib/modules/$kver in $kdir"

busybox=/usr/bin/busybox
# Static: ldd finds nothing to load (package busybox-static; plain busybox is dynamic).
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is missing or not static (Debian package busybox-static; scripts/bootstrap.sh installs it)"
fi
host_tools=(/usr/sbin/ip /usr/sbin/tc /usr/bin/rdma /usr/bin/jq)
for t in "${host_tools[@]}"; do
  [ -x "$t" ] || die "$t is missing (iproute2 and jq; scripts/bootstrap.sh installs them)"
done
# Optional: rdma-core's own tools, for the self-test of the lab's RDMA devices (package ibverbs-utils).
for t in /usr/bin/ibv_devinfo /usr/bin/ibv_ud_pingpong /usr/bin/ibv_rc_pingpong; do
  [ -x "$t" ] && host_tools+=("$t")
done
provider=$(find /usr/lib/$ma/libibverbs -maxdepth 1 -name 'librxe-rdmav*.so' 2>/dev/null | head -n1)
[ -n "$provider" ] || die "no /usr/lib/$ma/libibverbs/librxe-rdmav*.so (Debian package ibverbs-providers)"
[ -f /etc/libibverbs.d/rxe.driver ] || die "no /etc/libibverbs.d/rxe.driver (Debian package ibverbs-providers)"

# hymig binaries: BUILD_DIR-relative path -> path in the guest.
declare -A hymig_bins=(
  [cli/hymig]=/usr/bin/hymig
  [tests/hymig_unit_tests]=/usr/bin/hymig_unit_tests
  [tests/tools/hymig-test-writer]=/usr/bin/hymig-test-writer
  [bench/suite/hymig-bench]=/usr/bin/hymig-bench
)
[ -x "$build/cli/hymig" ] || die "$build/cli/hymig is not built (cmake --build the build directory first)"
bins=()
for b in "${!hymig_bins[@]}"; do [ -x "$build/$b" ] && bins+=("$build/$b"); done

modules=(configfs crc32_generic veth sch_netem udp_tunnel ip6_udp_tunnel ib_core ib_uverbs ib_cm iw_cm rdma_cm rdma_ucm rdma_rxe)

# Every shared library the executables need (ldd's resolved paths, the loader included).
libs_of() {
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u
}
# OpenMPI's launcher for hymig-bench (the lab's bench run): orterun, its plugins (dlopened: their own
# libraries are added; a plugin whose libraries are missing is skipped by OpenMPI), help texts, config.
mpi_run=""
mpi_dirs=()
if [ -x "$build/bench/suite/hymig-bench" ] && [ -x /usr/bin/orterun ]; then
  mpi_run=/usr/bin/orterun
  for d in /usr/lib/$ma/openmpi /usr/lib/$ma/pmix2 /usr/share/openmpi /usr/share/pmix /etc/openmpi; do
    [ -d "$d" ] && mpi_dirs+=("$d")
  done
fi
mpi_plugins=()
[ -n "$mpi_run" ] && mapfile -t mpi_plugins < <(find "${mpi_dirs[@]}" -name '*.so' -type f 2>/dev/null)
mapfile -t libs < <(libs_of "${bins[@]}" "${host_tools[@]}" "$provider" $mpi_run "${mpi_plugins[@]}")

# ---- up to date? names, sizes and mtimes of every input ----
lab_files=("$here/build-initramfs.sh" "$here/guest-init" "$here"/guest/*.sh)
stamp=$({
  echo "kernel $kdir $kver"
  stat -L -c '%n %s %Y' "$vmlinuz" "$kdir/.complete" "$busybox" "${host_tools[@]}" "$provider" \
    /etc/libibverbs.d/rxe.driver "${bins[@]}" "${libs[@]}" "${lab_files[@]}" $mpi_run "${mpi_dirs[@]}" 2>/dev/null || true
} | md5sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "$out is up to date"
  exit 0
fi

# ---- the tree ----
root=$out.root
rm -rf -- "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/lib/$ma/libibverbs,usr/lib64,etc/libibverbs.d,proc,sys,dev,run,tmp,root,lab}
ln -s usr/lib "$root/lib"      # merged /usr: the loader and ldd's /lib paths resolve through these
ln -s usr/lib64 "$root/lib64"

cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
  case $a in
    busybox) ;;
    modprobe | insmod | rmmod | lsmod | depmod | modinfo | poweroff | reboot | halt | sysctl | mdev) ln -s ../bin/busybox "$root/sbin/$a" ;;
    *) ln -s busybox "$root/bin/$a" ;;
  esac
done

for t in "${host_tools[@]}"; do cp "$t" "$root$t"; done
[ -d /usr/lib/tc ] && cp -r /usr/lib/tc "$root/usr/lib/tc"   # netem's delay distributions
for b in "${bins[@]}"; do
  rel=${b#"$build"/}
  strip --strip-unneeded -o "$root${hymig_bins[$rel]}" "$b"
done
cp "$provider" "$root/usr/lib/$ma/libibverbs/"
if [ -n "$mpi_run" ]; then
  cp "$mpi_run" "$root/usr/bin/orterun"
  ln -s orterun "$root/usr/bin/mpirun"
  for d in "${mpi_dirs[@]}"; do mkdir -p "$root$(dirname "$d")" && cp -a "$d" "$root$d"; done
fi
cp /etc/libibverbs.d/rxe.driver "$root/etc/libibverbs.d/"
for l in "${libs[@]}"; do
  dest=$root/usr${l#/usr}   # /lib/x86_64-linux-gnu/x and /usr/lib/x86_64-linux-gnu/x land in the same place
  mkdir -p "$(dirname "$dest")"
  cp -L "$l" "$dest"
done

# Kernel modules: the wanted ones and the closure of their modinfo `depends=` field.
mdest=$root/lib/modules/$kver
declare -A seen=()
add_module() {
  local m=$1 f deps d
  [ -n "${seen[$m]:-}" ] && return 0
  f=$(cd "$modsrc" && find kernel \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) | head -n1)
  if [ -z "$f" ]; then
    if grep -q -E "/(${m}|${m//_/-})\.ko$" "$modsrc/modules.builtin"; then seen[$m]=builtin; return 0; fi
    die "kernel module $m is neither in $modsrc nor built in"
  fi
  seen[$m]=$f
  mkdir -p "$mdest/$(dirname "$f")"
  case $f in
    *.ko.xz) xz -dc "$modsrc/$f" >"$mdest/${f%.xz}"; f=${f%.xz} ;;
    *.ko.zst) zstd -q -dc "$modsrc/$f" >"$mdest/${f%.zst}"; f=${f%.zst} ;;
    *) cp "$modsrc/$f" "$mdest/$f" ;;
  esac
  deps=$(strings "$mdest/$f" | sed -n 's/^depends=//p' | tr ',' ' ')
  for d in $deps; do add_module "$d"; done
}
for m in "${modules[@]}"; do add_module "$m"; done
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [ -f "$modsrc/$f" ] && cp "$modsrc/$f" "$mdest/"
done
"$busybox" depmod -b "$root" "$kver"

printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n. /lab/lib.sh\n' >"$root/etc/profile"
install -m 0755 "$here/guest-init" "$root/init"
for s in "$here"/guest/*.sh; do install -m 0755 "$s" "$root/lab/$(basename "$s")"; done
{
  echo "kernel=$kver"
  echo "built=$(date -u +%FT%TZ)"
  for b in "${bins[@]}"; do echo "binary=${hymig_bins[${b#"$build"/}]} from $b"; done
  echo "modules=${!seen[*]}"
} >"$root/lab/build-info"

tmp=$out.tmp
(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 >"$tmp"
mv -f "$tmp" "$out"
echo "$kdir" >"$out.kernel"
echo "$stamp" >"$out.stamp"
say "$out: $(du -h "$out" | cut -f1) compressed, $(du -sh "$root" | cut -f1) unpacked; kernel $kver; modules: ${!seen[*]}"
rm -rf -- "$root"
