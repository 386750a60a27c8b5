#!/usr/bin/env bash
# `make test` with CPU-bound processes beside it (default 2: one per core of the project's
# machines), as on a user's busy laptop: the suite must pass whatever else the machine is
# doing. Usage: scripts/test_under_load.sh [BUSY_PROCESSES] [make test arguments...]
set -euo pipefail
busy="${1:-2}"
shift || true
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "$busy"); do
    python3 -c 'while True: pass' &
    pids+=("$!")
done
echo "test_under_load: ${busy} busy processes (pids ${pids[*]}), load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
status=0
make test "$@" || status=$?
echo "test_under_load: make test exited ${status} after $(( $(date +%s) - start )) s with ${busy} busy processes"
exit "$status"
