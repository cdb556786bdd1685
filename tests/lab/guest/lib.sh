# shellcheck shell=sh
# Guest-side helpers of hymig's Soft-RoCE lab (busybox ash). Sourced by /init and by every guest
# script (/lab/NAME.sh).
#
#   result CHECK STATUS [REASON]   LAB-RESULT PASS CHECK (STATUS 0) or FAIL CHECK (REASON)
#   pass CHECK [NOTE]              LAB-RESULT PASS CHECK (NOTE)
#   na CHECK REASON                LAB-RESULT SKIP CHECK (not applicable: REASON): the check does not
#                                  apply here (only a gtest that skips itself); what the build or
#                                  image lacks is a failure, never a skip
#   info MSG...                    LAB-INFO MSG
#   figure TRANSPORT LOSS MBPS     LAB-FIGURE TRANSPORT LOSS MBPS (run-lab.sh collects them)
#   pair NAME TIMEOUT SERVER CLIENT
#                                  SERVER (a shell command) in the background, CLIENT in the
#                                  foreground, each under `timeout`; sets PAIR_SRV_RC, PAIR_CLI_RC
#                                  (124/143: killed by the timeout), PAIR_SRV_OUT, PAIR_CLI_OUT (files),
#                                  PAIR_SECONDS; shows both outputs. PAIR_READY=REGEX: start the client
#                                  once the server's output matches, PAIR_READY_PORT=N once a TCP
#                                  socket listens on port N (else after 1 s). A server still
#                                  running PAIR_GRACE (30) s after the client ended is stopped.
#   netem ARGS...                  tc qdisc replace dev veth0 root netem ARGS (source -> destination)
#   netem_off                      removes it;  netem_drops: packets netem dropped so far
#   net_count DEV STAT             /sys/class/net/DEV/statistics/STAT
#   rxe_count DEV COUNTER          the rxe port's hw_counters/COUNTER (0 when absent)
#   counters [TAG]                 LAB-CNT lines: veth and rxe counters
#   gid_index DEV IPV4             index of DEV's RoCE v2 GID for IPV4 (from sysfs); false if none
#   lab_wait_for SEC CMD...        polls CMD every 0.2 s; false after SEC seconds
#
# Call iproute2 by these functions or by full path: busybox's own ip/tc applets win over $PATH
# and lack what the lab needs (oif rules, netem).

LAB_SRC=10.9.0.1   # veth0, rxe0: where `hymig migrate` runs
LAB_DST=10.9.0.2   # veth1, rxe1: where `hymig serve` runs
LAB_RESULTS=/run/lab/results
HYMIG=/usr/bin/hymig
JQ=/usr/bin/jq
# Both sides of the lab are this guest: one throwaway cluster key for all its sessions.
HYMIG_KEY_FILE=/run/lab/cluster.key
export HYMIG_KEY_FILE
[ -f "$HYMIG_KEY_FILE" ] || { mkdir -p /run/lab && "$HYMIG" keygen "$HYMIG_KEY_FILE" 2>/dev/null; }

ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }
rdma() { /usr/bin/rdma "$@"; }

lab_uptime() { cut -d' ' -f1 /proc/uptime; }
lab_elapsed() { awk -v s="$1" -v e="$(lab_uptime)" 'BEGIN { printf "%.1f", e - s }'; }

info() { echo "LAB-INFO $*"; }
result() {
  if [ "$2" = 0 ]; then
    echo "LAB-RESULT PASS $1"
    echo "PASS $1" >>"$LAB_RESULTS"
  else
    echo "LAB-RESULT FAIL $1 (${3:-status $2})"
    echo "FAIL $1" >>"$LAB_RESULTS"
  fi
}
pass() {
  echo "LAB-RESULT PASS $1${2:+ ($2)}"
  echo "PASS $1" >>"$LAB_RESULTS"
}
# na CHECK REASON: the check does not apply to this lab (a gtest that skips itself, with its reason).
# Anything this build or image should have and lacks is a failure (result CHECK 1 ...), never this.
na() {
  echo "LAB-RESULT SKIP $1 (not applicable: $2)"
  echo "SKIP $1" >>"$LAB_RESULTS"
}
figure() { echo "LAB-FIGURE $1 $2 $3"; }

lab_wait_for() {
  _lw_limit=$1
  shift
  _lw_start=$(lab_uptime)
  until "$@"; do
    awk -v s="$_lw_start" -v e="$(lab_uptime)" -v l="$_lw_limit" 'BEGIN { exit !(e - s >= l) }' && return 1
    sleep 0.2
  done
  return 0
}

lab_rxe_active() { grep -q ACTIVE "/sys/class/infiniband/$1/ports/1/state" 2>/dev/null; }

# lab_alive PID: true while PID runs (not a zombie).
lab_alive() {
  [ -r "/proc/$1/stat" ] || return 1
  ! awk '{ sub(/.*\) /, ""); exit !($1 == "Z") }' "/proc/$1/stat" 2>/dev/null
}

# lab_show FILE TITLE: a command's output, indented, at most 200 lines (the head and the tail).
lab_show() {
  echo "----- $2"
  _ls_n=$(wc -l <"$1")
  if [ "$_ls_n" -le 200 ]; then
    sed 's/^/  | /' "$1"
  else
    head -n 100 "$1" | sed 's/^/  | /'
    echo "  | ... $((_ls_n - 200)) lines ..."
    tail -n 100 "$1" | sed 's/^/  | /'
  fi
}

pair() {
  _p_name=$1 _p_to=$2 _p_srv=$3 _p_cli=$4
  PAIR_SRV_OUT=/tmp/$_p_name.server PAIR_CLI_OUT=/tmp/$_p_name.client
  _p_start=$(lab_uptime)
  timeout "$_p_to" sh -c "$_p_srv" >"$PAIR_SRV_OUT" 2>&1 &
  _p_pid=$!
  if [ -n "${PAIR_READY:-}" ]; then
    lab_wait_for 60 pair__ready "$_p_pid" || echo "LAB-INFO $_p_name: server output did not match '$PAIR_READY' within 60 s"
  elif [ -n "${PAIR_READY_PORT:-}" ]; then
    lab_wait_for 60 pair__listening "$_p_pid" || echo "LAB-INFO $_p_name: nothing listens on TCP port $PAIR_READY_PORT after 60 s"
  else
    sleep 1
  fi
  timeout "$_p_to" sh -c "$_p_cli" >"$PAIR_CLI_OUT" 2>&1
  PAIR_CLI_RC=$?
  # The server should end on its own soon after the client (a --once server); else it is stopped.
  if ! lab_wait_for "${PAIR_GRACE:-30}" pair__ended "$_p_pid"; then
    echo "LAB-INFO $_p_name: server still running ${PAIR_GRACE:-30} s after the client ended: stopping it"
    kill -TERM "$_p_pid" 2>/dev/null
    lab_wait_for 5 pair__ended "$_p_pid" || kill -KILL "$_p_pid" 2>/dev/null
  fi
  wait "$_p_pid"
  PAIR_SRV_RC=$?
  PAIR_SECONDS=$(lab_elapsed "$_p_start")
  lab_show "$PAIR_SRV_OUT" "$_p_name server: $_p_srv (exit $PAIR_SRV_RC)"
  lab_show "$PAIR_CLI_OUT" "$_p_name client: $_p_cli (exit $PAIR_CLI_RC)"
  echo "LAB-TIME $_p_name ${PAIR_SECONDS}s"
}
pair__ready() { grep -q -E "$PAIR_READY" "$PAIR_SRV_OUT" 2>/dev/null || ! lab_alive "$1"; }
pair__ended() { ! lab_alive "$1"; }
pair__listening() {
  ! lab_alive "$1" || awk -v p="$(printf ':%04X' "$PAIR_READY_PORT")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6
}

netem() { tc qdisc replace dev veth0 root netem "$@"; }
netem_off() { tc qdisc del dev veth0 root 2>/dev/null; true; }
netem_drops() { tc -s qdisc show dev veth0 | awk '/netem/ { n = 1 } n && /dropped/ { sub(/.*dropped /, ""); sub(/,.*/, ""); d = $0; exit } END { print d + 0 }'; }

net_count() { cat "/sys/class/net/$1/statistics/$2"; }
rxe_count() { cat "/sys/class/infiniband/$1/ports/1/hw_counters/$2" 2>/dev/null || echo 0; }
counters() {
  for _c_d in veth0 veth1; do
    echo "LAB-CNT ${1:-} $_c_d: tx_packets=$(net_count $_c_d tx_packets) rx_packets=$(net_count $_c_d rx_packets) tx_bytes=$(net_count $_c_d tx_bytes) tx_dropped=$(net_count $_c_d tx_dropped)"
  done
  for _c_d in rxe0 rxe1; do
    printf 'LAB-CNT %s %s:' "${1:-}" "$_c_d"
    for _c_c in sent_pkts rcvd_pkts duplicate_request out_of_seq_request rcvd_seq_err completer_retry_err retry_exceeded_err; do
      printf ' %s=%s' "$_c_c" "$(rxe_count "$_c_d" "$_c_c")"
    done
    echo
  done
}

gid_index() {
  _g_want=$(echo "$2" | awk -F. '{ printf "0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x", $1, $2, $3, $4 }')
  for _g in /sys/class/infiniband/"$1"/ports/1/gids/*; do
    [ "$(cat "$_g" 2>/dev/null)" = "$_g_want" ] || continue
    _g_i=${_g##*/}
    case $(cat "/sys/class/infiniband/$1/ports/1/gid_attrs/types/$_g_i" 2>/dev/null) in
      *v2* | *V2*) echo "$_g_i"; return 0 ;;
    esac
  done
  return 1
}
