#!/bin/sh
# verbs_unit [FILTER [loss5]]: hymig's gtest suites for the verbs backends (default filter Verbs*:*/Verbs*,
# which also takes parametrised instantiations such as Rxe/VerbsUd.*) against real Soft-RoCE
# devices. Each gtest test is one check, gtest:Suite.Name (PASS, FAIL or SKIP as gtest says), plus
# `verbs-unit` for the binary's exit status. A build with no Verbs tests passes, saying so; a build
# that lists Verbs tests but runs none, or skips every one of them while rxe0/rxe1 are ACTIVE, fails.
# With loss5 the tests run with netem loss 5% delay 1ms on veth0 (rxe0 -> rxe1), for measurements
# under loss (e.g. run-lab.sh verbs_unit --args 'VerbsThroughput.RcFinal*,loss5').
#
# The tests find the lab through the environment (names stable for the verbs/ tests to use):
#   HYMIG_LAB=1
#   HYMIG_LAB_SRC_DEV=rxe0 HYMIG_LAB_SRC_ADDR=10.9.0.1 HYMIG_LAB_SRC_GID_INDEX=N   (veth0 side)
#   HYMIG_LAB_DST_DEV=rxe1 HYMIG_LAB_DST_ADDR=10.9.0.2 HYMIG_LAB_DST_GID_INDEX=N   (veth1 side)
#   HYMIG_LAB_MTU=veth MTU
. /lab/lib.sh

filter=${1:-'Verbs*:*/Verbs*:*/EngineOverEveryTransport.*'}
impair=${2:-}
bin=/usr/bin/hymig_unit_tests
if [ ! -x "$bin" ]; then
  result verbs-unit 1 "no hymig_unit_tests in the image (tests/hymig_unit_tests was not built)"
  exit 0
fi

export HYMIG_LAB=1
HYMIG_LAB_SRC_GID_INDEX=$(gid_index rxe0 "$LAB_SRC")
HYMIG_LAB_DST_GID_INDEX=$(gid_index rxe1 "$LAB_DST")
HYMIG_LAB_MTU=$(cat /sys/class/net/veth0/mtu)
export HYMIG_LAB_SRC_DEV=rxe0 HYMIG_LAB_SRC_ADDR=$LAB_SRC HYMIG_LAB_SRC_GID_INDEX
export HYMIG_LAB_DST_DEV=rxe1 HYMIG_LAB_DST_ADDR=$LAB_DST HYMIG_LAB_DST_GID_INDEX
export HYMIG_LAB_MTU
info "environment: $(env | grep '^HYMIG_LAB' | sort | tr '\n' ' ')"

"$bin" --gtest_list_tests --gtest_filter="$filter" >/tmp/verbs-list 2>&1
lrc=$?
listed=$(grep -c '^  ' /tmp/verbs-list)
if [ "$lrc" != 0 ]; then
  lab_show /tmp/verbs-list "hymig_unit_tests --gtest_list_tests (exit $lrc)"
  result verbs-unit 1 "hymig_unit_tests --gtest_list_tests exited $lrc"
  exit 0
fi
if [ "$listed" = 0 ]; then
  pass verbs-unit "no Verbs tests in this build: --gtest_filter='$filter' lists none"
  exit 0
fi
info "$listed Verbs tests listed for --gtest_filter='$filter'"

case $impair in
  "") ;;
  loss5) netem loss 5% delay 1ms || { result verbs-unit 1 "tc qdisc add dev veth0 root netem loss 5% delay 1ms failed"; exit 0; }
         info "netem loss 5% delay 1ms on veth0" ;;
  *) result verbs-unit 1 "unknown impairment '$impair' (loss5)"; exit 0 ;;
esac
start=$(lab_uptime)
timeout 600 "$bin" --gtest_filter="$filter" --gtest_color=no >/tmp/verbs-run 2>&1
rc=$?
[ -n "$impair" ] && info "netem dropped $(netem_drops) packets" && netem_off
grep -a 'VERBS-MEASURE' /tmp/verbs-run | while IFS= read -r line; do figure verbs "${impair:-loss0}" "$line"; done
lab_show /tmp/verbs-run "hymig_unit_tests --gtest_filter='$filter' (exit $rc, $(lab_elapsed "$start") s)"

# One check per test, from gtest's per-test lines: "[       OK ] Suite.Name (12 ms)".
sed -n -E 's/^\[ +(OK|FAILED|SKIPPED) +\] ([^ ]+) \([0-9]+ ms\)$/\1 \2/p' /tmp/verbs-run >/tmp/verbs-results
while read -r verdict name; do
  case $verdict in
    OK) result "gtest:$name" 0 ;;
    FAILED) result "gtest:$name" 1 "gtest FAILED; its output is above" ;;
    SKIPPED) na "gtest:$name" "GTEST_SKIP; its reason is above" ;;
  esac
done </tmp/verbs-results
ran=$(sed -n -E 's/^\[=+\] ([0-9]+) tests? from .* ran\..*/\1/p' /tmp/verbs-run | tail -n1)
skipped=$(grep -c '^SKIPPED ' /tmp/verbs-results)
why=""
[ "$rc" = 0 ] || why="hymig_unit_tests exited $rc$( [ "$rc" = 124 ] && echo " (killed after 600 s)");"
[ "${ran:-0}" -gt 0 ] || why="$why $listed Verbs tests are listed but ${ran:-0} ran;"
[ "${ran:-0}" -eq 0 ] || [ "$skipped" -lt "$ran" ] || why="$why every Verbs test skipped although rxe0/rxe1 are ACTIVE;"
result verbs-unit "$([ -z "$why" ] && echo 0 || echo 1)" "$why"
counters verbs-unit
exit 0
