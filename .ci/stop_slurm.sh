#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by .ci/start_slurm.sh (slurmd and slurmctld).
# munged is left running: it is harmless and the next start_slurm.sh reuses it.
# Running it when nothing is running is fine.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

stop_daemon() {
    local name=$1 pids
    pids=$(pgrep -x "$name" --runstates R,S,D,T || true)
    if [[ -z "$pids" ]]; then
        echo "[stop_slurm] $name not running"
        return 0
    fi
    echo "[stop_slurm] stopping $name ($(echo $pids))"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    # Give it up to 20 s to save state and exit, then kill it.
    for _ in $(seq 40); do
        pgrep -x "$name" --runstates R,S,D,T >/dev/null || return 0
        sleep 0.5
    done
    echo "[stop_slurm] $name did not exit, sending SIGKILL"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
}

# slurmd first, so slurmctld does not see its node vanish while still running jobs.
stop_daemon slurmd
stop_daemon slurmctld
