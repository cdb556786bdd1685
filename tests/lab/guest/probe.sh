#!/bin/sh
# probe: what `hymig probe` says in the lab guest (two rxe devices, the lab's addresses), for the
# record: text and JSON, without and with --peer (the destination's address, 10.9.0.2). Each run
# is one check: exit 0 and, for JSON, an object with a plan. bash tests/lab/run-lab.sh probe.
. /lab/lib.sh

n=0
for args in "" "--json" "--peer $LAB_DST" "--peer $LAB_DST --json"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  timeout 60 "$HYMIG" probe $args >/tmp/probe-$n.out 2>&1
  prc=$?
  lab_show /tmp/probe-$n.out "hymig probe $args (exit $prc)"
  ok=$prc
  case $args in *--json*) [ "$prc" = 0 ] && { $JQ -e '.plan | type == "object"' /tmp/probe-$n.out >/dev/null 2>&1; ok=$?; } ;; esac
  result "probe${args:+ $args}" "$ok" "hymig probe $args exited $prc"
done
exit 0
