# shellcheck shell=bash
# The start of every libvirt-lane test: source after `set -euo pipefail` and HM_TEST_NAME. Loads
# the helpers (tests/lib/common.sh, lib.sh, libvirt_lib.sh, libvirt_hymig.sh), turns any unexpected
# failure into hm_fail naming the line, sets the deadline (HYMIG_VM_DEADLINE, default 560 s), makes
# $HM_TMP, skips (77, reason printed) where the lane cannot run, starts the console watcher and the
# two libvirt daemons.
VM_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
source "$VM_TEST_DIR/../lib/common.sh"
# shellcheck source=lib.sh
source "$VM_TEST_DIR/lib.sh"
# shellcheck source=libvirt_lib.sh
source "$VM_TEST_DIR/libvirt_lib.sh"
# shellcheck source=libvirt_hymig.sh
source "$VM_TEST_DIR/libvirt_hymig.sh"
trap 'hm_fail "unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR
hm_deadline "${HYMIG_VM_DEADLINE:-560}"
hm_tmpdir
lv_require
vm_watch_start
lv_start_pair
