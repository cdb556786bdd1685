#!/usr/bin/env bash
# Repeats the check of issue 11: the README's two commands on the most minimal Debian 12. Makes a
# `debootstrap --variant=minbase bookworm` root, copies this repository into it, bind-mounts the
# root onto itself (so / is a mount point) with /proc, /sys, /dev and a fresh tmpfs on /run (and on
# /dev/shm, where the tests keep their files), then runs `bash scripts/demo.sh` and
# `bash scripts/test.sh` as root inside `chroot` with a clean environment (env -i), and prints each
# command's exit status and ctest's closing lines. Everything is unmounted on exit, also on failure
# or Ctrl-C. Not part of .ci/run: it needs root, Debian's mirror, a few GB of disk and, on 2 cores,
# an hour or more (a full build and the whole test suite).
set -euo pipefail

PROG=check-minimal-debian
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IN_ROOT_REPO=/work/hymig # where the repository is copied, inside the root
MIN_FREE_MB=6144

usage() {
  cat <<EOF
Usage: bash scripts/check-minimal-debian.sh [OPTIONS] [-- CTEST-ARGS...]

Runs the README's commands (bash scripts/demo.sh, then bash scripts/test.sh) as root inside a fresh
minimal Debian 12 root (debootstrap --variant=minbase $SUITE) entered with chroot and env -i, and
prints a summary: each command's exit status and ctest's closing lines. Exits 0 when both commands
succeeded, 1 when either failed, 2 when the check itself could not be set up.

Options:
  -d, --dir DIR       make the root in DIR (created; must be empty or absent) and keep it afterwards.
                      Default: a new temporary directory under /var/tmp, removed at the end.
      --reuse         with --dir: DIR already holds a root from an earlier run; skip debootstrap and
                      keep its installed packages and build directory (quicker, for iterating on a
                      fix; the real check is on a fresh root)
      --keep          keep the temporary root (default: removed at the end)
      --source MODE   what is copied into the root (to $IN_ROOT_REPO):
                        worktree  the working tree as it is, uncommitted changes included: tracked
                                  and untracked files that .gitignore does not exclude (default)
                        head      the committed tree (git archive HEAD)
      --logs DIR      write debootstrap.log, demo.log and test.log to DIR
                      (default: a new temporary directory under /var/tmp)
      --mirror URL    Debian mirror for debootstrap (default: $MIRROR)
  -h, --help          this text

Arguments after -- are passed to scripts/test.sh (ctest), e.g. -- -R libvirt

Needs: root; debootstrap (installed with apt-get when missing); Debian's mirror reachable (inside the
root, scripts/bootstrap.sh installs the build and test packages with apt-get, and the vm and lab
tests fetch the guest kernel package); about ${MIN_FREE_MB} MB free where the root is made.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 2
}

ROOT="" REUSE=0 KEEP=0 SOURCE=worktree LOG_DIR="" TEST_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    -d | --dir)
      [ $# -ge 2 ] || die "$1 needs a directory"
      ROOT=$2
      shift 2
      ;;
    --dir=*) ROOT=${1#*=}; shift ;;
    --reuse) REUSE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --source)
      [ $# -ge 2 ] || die "$1 needs worktree or head"
      SOURCE=$2
      shift 2
      ;;
    --source=*) SOURCE=${1#*=}; shift ;;
    --logs)
      [ $# -ge 2 ] || die "$1 needs a directory"
      LOG_DIR=$2
      shift 2
      ;;
    --logs=*) LOG_DIR=${1#*=}; shift ;;
    --mirror)
      [ $# -ge 2 ] || die "$1 needs a URL"
      MIRROR=$2
      shift 2
      ;;
    --mirror=*) MIRROR=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; TEST_ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case $SOURCE in worktree | head) ;; *) die "--source $SOURCE: worktree or head" ;; esac
[ "$REUSE" -eq 0 ] || [ -n "$ROOT" ] || die "--reuse needs --dir DIR (the root of an earlier run)"

[ "$(id -u)" -eq 0 ] ||
  die "must run as root (debootstrap, mount and chroot need it; the tests run as root): sudo bash $0 $*"
for c in chroot mount umount findmnt tar stat df; do
  command -v "$c" >/dev/null || die "'$c' is not installed (Debian packages coreutils, mount, util-linux, tar)"
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
{ [ -f "$REPO/scripts/test.sh" ] && [ -f "$REPO/scripts/demo.sh" ]; } ||
  die "$REPO does not look like the hymig repository (no scripts/test.sh, scripts/demo.sh)"
IS_GIT=0
if command -v git >/dev/null && git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then IS_GIT=1; fi
[ "$SOURCE" = worktree ] || [ "$IS_GIT" -eq 1 ] ||
  die "--source head needs git and a git checkout ($REPO is not one, or git is not installed): use --source worktree"

# --- cleanup: on every exit --------------------------------------------------------------------------
# STARTED: from debootstrap on, whatever is mounted under the root is this run's (it was checked
# that nothing was before) and is unmounted here.
STARTED=0 TEMP_ROOT=0 root_id=""

# PIDs of processes whose root directory is the chroot (what the run left behind, e.g. a daemon).
# shellcheck disable=SC2317  # called from the EXIT trap
procs_in_root() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" != "$$" ] || continue
    [ "$(stat -L -c %d:%i "$d/root" 2>/dev/null)" = "$root_id" ] && echo "$pid"
  done
  return 0
}

# shellcheck disable=SC2317
mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$ROOT" '$0 == r || index($0, r "/") == 1'; }

# shellcheck disable=SC2317
cleanup() {
  local rc=$? pids left
  trap - EXIT INT TERM
  set +e
  if [ "$STARTED" -eq 1 ]; then
    pids=$(procs_in_root | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
      say "ending processes left in the root: $pids"
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null
      sleep 2
      pids=$(procs_in_root | tr '\n' ' ')
      # shellcheck disable=SC2086
      [ -z "${pids// /}" ] || { kill -KILL $pids 2>/dev/null; sleep 1; }
    fi
    if [ -n "$(mounts_under_root)" ] && ! umount -R "$ROOT" 2>/dev/null; then
      say "umount -R $ROOT failed (busy?): detaching lazily"
      umount -R -l "$ROOT"
    fi
    left=$(mounts_under_root)
    if [ -n "$left" ]; then
      say "warning: still mounted under $ROOT: $(echo "$left" | tr '\n' ' ')"
      [ "$rc" -ne 0 ] || rc=2
    fi
  fi
  if [ "$TEMP_ROOT" -eq 1 ] && [ "$KEEP" -eq 0 ] && [ -d "$ROOT" ]; then
    # Never remove a tree something is still mounted in (a bind of /dev would go with it).
    if [ -z "$(mounts_under_root)" ]; then
      rm -rf --one-file-system "$ROOT"
    else
      say "not removing $ROOT: something is still mounted under it"
    fi
  elif [ "$STARTED" -eq 1 ] && [ -d "$ROOT" ]; then
    say "the root stays in $ROOT"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the root directory ---------------------------------------------------------------------------
if [ -z "$ROOT" ]; then
  ROOT=$(mktemp -d /var/tmp/hymig-minroot.XXXXXX) || die "cannot make a temporary directory under /var/tmp"
  TEMP_ROOT=1
else
  ROOT=$(realpath -m "$ROOT")
fi
[ "$ROOT" != / ] || die "the root cannot be /"
case "$ROOT/" in
  "$REPO"/*) die "$ROOT is inside the repository ($REPO): choose a directory outside it" ;;
esac
case "$REPO/" in
  "$ROOT"/*) die "$ROOT contains the repository ($REPO): choose another directory" ;;
esac
if [ "$TEMP_ROOT" -eq 0 ]; then
  mkdir -p "$ROOT" || die "cannot create $ROOT"
  ROOT=$(cd "$ROOT" && pwd -P)
fi
[ -z "$(mounts_under_root)" ] ||
  die "something is mounted at or under $ROOT (an earlier run that was killed?): umount -R $ROOT"
if [ "$REUSE" -eq 1 ]; then
  { [ -f "$ROOT/etc/debian_version" ] && [ -x "$ROOT/bin/bash" ]; } ||
    die "--reuse: $ROOT holds no Debian root (no etc/debian_version, bin/bash)"
elif [ -n "$(ls -A "$ROOT")" ]; then
  die "$ROOT is not empty: give an empty or new directory (or --reuse for a root of an earlier run)"
fi
free_mb=$(df -Pm "$ROOT" | awk 'NR == 2 {print $4}')
[ "$REUSE" -eq 1 ] || [ "${free_mb:-0}" -ge "$MIN_FREE_MB" ] ||
  die "only ${free_mb} MB free on the filesystem of $ROOT; the root, its packages and the build need about $MIN_FREE_MB MB"

if [ -z "$LOG_DIR" ]; then
  LOG_DIR=$(mktemp -d /var/tmp/hymig-check-logs.XXXXXX) || die "cannot make a log directory under /var/tmp"
else
  mkdir -p "$LOG_DIR" || die "cannot create $LOG_DIR"
  LOG_DIR=$(cd "$LOG_DIR" && pwd -P)
fi
case "$LOG_DIR/" in "$ROOT"/*) die "--logs must not be inside the root (it is removed or unmounted)" ;; esac

# --- debootstrap ---------------------------------------------------------------------------------------
STARTED=1
root_id=$(stat -c %d:%i "$ROOT")
if [ "$REUSE" -eq 0 ]; then
  if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || die "debootstrap is not installed and there is no apt-get to install it"
    say "debootstrap is not installed: apt-get install debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends debootstrap >"$LOG_DIR/apt-debootstrap.log" 2>&1; then
      apt-get update -qq >>"$LOG_DIR/apt-debootstrap.log" 2>&1 || true
      apt-get install -y -qq --no-install-recommends debootstrap >>"$LOG_DIR/apt-debootstrap.log" 2>&1 ||
        die "could not install debootstrap: $(tail -n 5 "$LOG_DIR/apt-debootstrap.log")"
    fi
  fi
  say "debootstrap --variant=minbase $SUITE $ROOT $MIRROR (a few minutes; log: $LOG_DIR/debootstrap.log)"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed (is $MIRROR reachable?); its last lines:
$(tail -n 15 "$LOG_DIR/debootstrap.log")"
fi
[ -s "$ROOT/etc/resolv.conf" ] || { [ -f /etc/resolv.conf ] && cp /etc/resolv.conf "$ROOT/etc/resolv.conf"; } || true

# --- the repository ----------------------------------------------------------------------------------------
dest=$ROOT$IN_ROOT_REPO
if [ -d "$dest" ]; then
  # --reuse: fresh sources, the earlier build directory kept
  find "$dest" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
fi
mkdir -p "$dest"
SOURCE_DESC=""
if [ "$SOURCE" = head ]; then
  git -C "$REPO" archive --format=tar HEAD | tar -x -C "$dest" || die "git archive HEAD failed"
  SOURCE_DESC="committed tree of $REPO at $(git -C "$REPO" rev-parse --short HEAD) (git archive HEAD)"
elif [ "$IS_GIT" -eq 1 ]; then
  # Tracked and untracked files, as they are on disk (a tracked file deleted in the working tree is
  # left out: --ignore-failed-read).
  (cd "$REPO" && git ls-files -z -c -o --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) |
    tar -x -C "$dest" || die "copying the working tree of $REPO failed"
  changed=$(git -C "$REPO" status --porcelain --untracked-files=normal | wc -l)
  SOURCE_DESC="working tree of $REPO (HEAD $(git -C "$REPO" rev-parse --short HEAD), $changed changed or untracked paths)"
else
  tar -C "$REPO" --exclude=./build --exclude=./bench/out --exclude=./.git -cf - . | tar -x -C "$dest" ||
    die "copying $REPO failed"
  SOURCE_DESC="copy of $REPO (not a git checkout; build/ and bench/out/ left out)"
fi
say "copied the $SOURCE_DESC to $IN_ROOT_REPO in the root"

# --- mounts ---------------------------------------------------------------------------------------------------
# Each mount is made private at once, so nothing mounted in the root propagates to the host.
{ mount --bind "$ROOT" "$ROOT" && mount --make-private "$ROOT"; } || die "bind-mounting $ROOT onto itself failed"
for fs in proc sys dev; do
  mkdir -p "$ROOT/$fs"
  { mount --bind "/$fs" "$ROOT/$fs" && mount --make-private "$ROOT/$fs"; } || die "mount --bind /$fs $ROOT/$fs failed"
done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$ROOT/run" || die "mounting a tmpfs on $ROOT/run failed"
mkdir -p "$ROOT/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm" || die "mounting a tmpfs on $ROOT/dev/shm failed"

# --- the README's commands ----------------------------------------------------------------------------
# run_in_root NAME SCRIPT ARGS...: bash SCRIPT ARGS in the repository's copy, as root in the chroot
# with a clean environment; output to the terminal and to $LOG_DIR/NAME.log; sets RUN_RC, RUN_SEC.
# The pipeline runs in the background and is waited for, so that SIGINT or SIGTERM reaches the
# cleanup at once (which ends every process in the root), not after the command.
run_in_root() {
  local name=$1 t0 pid
  shift
  t0=$SECONDS
  say "running in the chroot: bash $* (log: $LOG_DIR/$name.log)"
  # shellcheck disable=SC2016  # expanded by the inner bash
  (
    chroot "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root \
      /bin/bash -c 'cd "$1" && shift && exec bash "$@"' run "$IN_ROOT_REPO" "$@" </dev/null 2>&1 |
      tee "$LOG_DIR/$name.log"
    exit "${PIPESTATUS[0]}"
  ) &
  pid=$!
  RUN_RC=0
  wait "$pid" || RUN_RC=$?
  RUN_SEC=$((SECONDS - t0))
}

dur() { printf '%dh%02dm%02ds' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }

run_in_root demo scripts/demo.sh
DEMO_RC=$RUN_RC DEMO_SEC=$RUN_SEC
run_in_root test scripts/test.sh "${TEST_ARGS[@]}"
TEST_RC=$RUN_RC TEST_SEC=$RUN_SEC

# --- summary ----------------------------------------------------------------------------------------------------
# ctest's closing lines: the count, the time, every failed test, and the first 10 that did not run
# (skipped: each says why in the log with --output-on-failure, or when run by hand).
ctest_lines=$(awk '
  function flush() { if (more > 0) print "    \t... and " more " more (" logf ")"; more = 0 }
  /tests passed, .* tests failed out of/ || /^Total Test time/ || /^No tests were found/ {flush(); inlist = ""; print "    " $0; next}
  /^The following tests (FAILED|did not run):/ {flush(); inlist = ($0 ~ /FAILED/) ? "failed" : "notrun"; n = 0; print "    " $0; next}
  inlist != "" && /^[[:space:]]+[0-9]+ - / {
    sub(/  # GetParam\(\) = .* \(/, " (")
    if (inlist == "failed" || ++n <= 10) print "    " $0; else more++
    next
  }
  {flush(); inlist = ""}
  END {flush()}' logf="$LOG_DIR/test.log" "$LOG_DIR/test.log")
{
  echo
  echo "==================== $PROG: summary ===================="
  echo "root:    $ROOT (debootstrap --variant=minbase $SUITE, $MIRROR; / bind-mounted onto itself,"
  echo "         /proc /sys /dev bound, fresh tmpfs on /run and /dev/shm; chroot + env -i)"
  echo "source:  $SOURCE_DESC"
  echo "bash scripts/demo.sh: exit $DEMO_RC after $(dur "$DEMO_SEC")"
  echo "bash scripts/test.sh${TEST_ARGS[*]:+ ${TEST_ARGS[*]}}: exit $TEST_RC after $(dur "$TEST_SEC")"
  echo "ctest's closing lines:"
  if [ -n "$ctest_lines" ]; then echo "$ctest_lines"; else echo "    (none: ctest did not run or did not finish; see the log)"; fi
  echo "logs:    $LOG_DIR/demo.log, $LOG_DIR/test.log"
  if [ "$DEMO_RC" -eq 0 ] && [ "$TEST_RC" -eq 0 ]; then
    echo "result:  PASS (both commands succeeded on a minimal Debian 12)"
  else
    echo "result:  FAIL"
  fi
} | tee "$LOG_DIR/summary.txt"
[ "$DEMO_RC" -eq 0 ] && [ "$TEST_RC" -eq 0 ] || exit 1
exit 0
