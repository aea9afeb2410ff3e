# Sourced by the scripts that start long-running Airflow processes: each child runs
# in its own process group (job control on), and Ctrl-C, SIGTERM or the script's
# exit stops every group, so no scheduler, worker or task process outlives it.
#
#   start_child NAME COMMAND...   run COMMAND in the background, output to $CHILD_LOGS/NAME.log
#                                 (or to this terminal when CHILD_LOGS is unset),
#                                 its pid in $CHILD_PIDS/NAME.pid when CHILD_PIDS is set
#   wait_children                 wait until every child has exited or a signal arrives

set -m  # each background job gets its own process group, led by the job's pid
children=()
trap 'stop_children; exit 130' INT
trap 'stop_children; exit 143' TERM
trap 'stop_children' EXIT

start_child() {
  local name=$1
  shift
  if [ -n "${CHILD_LOGS:-}" ]; then
    "$@" >"$CHILD_LOGS/$name.log" 2>&1 &
  else
    "$@" &
  fi
  children+=("$!")
  if [ -n "${CHILD_PIDS:-}" ]; then echo "$!" >"$CHILD_PIDS/$name.pid"; fi
}

_alive() {
  local pid
  for pid in "${children[@]}"; do
    if kill -0 -- "-$pid" 2>/dev/null; then return 0; fi
  done
  return 1
}

stop_children() {
  trap - INT TERM EXIT
  local pid i
  for pid in "${children[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  # Airflow components shut down cleanly within seconds; whatever is left after 20 s is killed
  for i in $(seq 40); do _alive || break; sleep 0.5; done
  for pid in "${children[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}

wait_children() {
  # one child exiting (a worker lost, say) leaves the others running, as on separate machines
  local pid status
  while _alive; do
    status=0
    wait -n -p pid || status=$?
    if [ "$status" = 127 ]; then sleep 1; continue; fi  # leaders gone, members still stopping
    echo "process $pid exited (status $status)" >&2
  done
}
