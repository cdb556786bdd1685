# shellcheck shell=bash
# hm_mpirun ARGS...: mpirun with what these machines need, set by the script rather than by hand.
# - As root, OpenMPI refuses to start without its two allow-run-as-root variables.
# - --bind-to none: hymig and the peers run as children of the ranks and inherit their CPU
#   affinity; binding each rank to one core would halve what they can use.
# - --oversubscribe: a pair on a host with fewer detected slots than ranks still runs.
# Extra mpirun options (a hostfile, MCA settings) come from $HYMIG_MPIRUN_ARGS.
hm_mpirun() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  # shellcheck disable=SC2086
  mpirun --bind-to none --oversubscribe ${HYMIG_MPIRUN_ARGS:-} "$@"
}
