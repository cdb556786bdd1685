#!/bin/sh
# bench: hymig-bench launched by a real `mpirun -np 2` inside the lab guest (issue: benchmarks run
# where the users run them, and here the only place with RDMA). The even rank sends from 10.9.0.1
# (veth0, rxe0), the odd rank receives on 10.9.0.2 (veth1, rxe1); hymig UDP+TCP, --bulk tcp and
# RDMA UD (hymig-rdma), a 32 MiB idle image, first without loss, then with netem loss 5 % + 1 ms
# delay on veth0. Checks per run: mpirun exits 0, every output exists, every hymig run committed and
# verified. Each transport's median is printed as LAB-FIGURE bench-TRANSPORT LOSS MB/s.
. /lab/lib.sh

JQ=/usr/bin/jq
BENCH=/usr/bin/hymig-bench
if [ ! -x "$BENCH" ] || [ ! -x /usr/bin/mpirun ]; then
  result bench 1 "no hymig-bench or mpirun in the image (bench/suite/hymig-bench not built, or OpenMPI missing)"
  exit 0
fi

# As root, OpenMPI needs its allow-run-as-root settings; both ranks share this guest, so shared
# memory and loopback carry MPI's own traffic (pml ob1, btl self+vader: no RDMA for MPI itself).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=^ucx OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_plm_rsh_agent=false HOME=/root

for loss in loss0 loss5; do
  check=bench-$loss out=/tmp/hb-$loss
  case $loss in
    loss0) netem_off ;;
    loss5) netem loss 5% delay 1ms || { result "$check" 1 "tc netem failed"; continue; } ;;
  esac
  start=$(lab_uptime)
  timeout 600 mpirun -np 2 --bind-to none --oversubscribe "$BENCH" --quick --sizes 32M --dirty-rates 0 --reps 2 \
    --transports hymig,hymig-tcp,hymig-rdma --bind "$LAB_DST" --hymig-args "--bind $LAB_SRC" \
    --title "Soft-RoCE lab guest, $loss" --out "$out" >/tmp/$check.log 2>&1
  rc=$?
  netem_off
  lab_show /tmp/$check.log "$check: mpirun -np 2 hymig-bench (exit $rc, $(lab_elapsed "$start") s)"
  why=""
  [ "$rc" = 0 ] || why="mpirun -np 2 hymig-bench exited $rc;"
  for f in results.csv summary.csv results.json report.md; do
    [ -s "$out/$f" ] || why="$why $f missing;"
  done
  if [ -s "$out/results.json" ]; then
    problems=$($JQ -r '[.runs[] | select(.transport | startswith("hymig"))
                        | select(.status != "ok" or .verified != true)
                        | "\(.transport) rep \(.rep): \(.status) \(.note)"] | join("; ")' "$out/results.json" 2>&1) ||
      problems="results.json is not JSON: $problems"
    [ -z "$problems" ] || why="$why $problems;"
    n=$($JQ '[.runs[] | select(.transport == "hymig-rdma" and .status == "ok")] | length' "$out/results.json")
    [ "$n" -gt 0 ] || why="$why no hymig-rdma run (is RDMA seen by hymig probe?);"
    $JQ -r '.summary[] | select(.transport | startswith("hymig")) | "\(.transport) \(.gbps.median // 0)"' \
      "$out/results.json" 2>/dev/null | while read -r tr gbps; do
      figure "bench-$tr" "$loss" "$(awk -v g="$gbps" 'BEGIN { printf "%.2f", g * 1000 / 8 }')"
    done
  fi
  if [ -z "$why" ]; then pass "$check"; else result "$check" 1 "$why"; fi
done
