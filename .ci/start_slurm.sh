#!/usr/bin/env bash
# Turn this machine into a one-node Slurm cluster (partition "debug"), as root, without systemd.
#
#   .ci/start_slurm.sh        # installs Debian's slurm + munge if needed, configures, starts
#   .ci/stop_slurm.sh         # stops slurmctld and slurmd again (munged keeps running)
#
# Safe to run more than once: packages are installed only when missing, the munge key is kept,
# and daemons that are already running are left alone (unless slurm.conf had to change, in which
# case slurmctld and slurmd are restarted so they read the new file).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "start_slurm.sh: must run as root" >&2
    exit 1
fi

SLURM_ETC=/etc/slurm
SLURM_LOG=/var/log/slurm
SLURM_STATE=/var/lib/slurm/slurmctld
SLURM_SPOOL=/var/lib/slurm/slurmd
PARTITION=debug
READY_TIMEOUT=${SLURM_READY_TIMEOUT:-60} # seconds to wait for the node to become idle

log() { echo "[start_slurm] $*"; }
# Is a live process with this exact name running? (Zombies left by the daemons' own forking,
# which PID 1 here may reap late, do not count.)
running() { pgrep -x "$1" --runstates R,S,D,T >/dev/null; }

# --- 1. packages ------------------------------------------------------------------------------
have_all() {
    local b
    for b in sinfo slurmctld slurmd munged; do
        command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 1
    done
}
export PATH="$PATH:/usr/sbin:/sbin"
if have_all; then
    log "slurm and munge already installed"
else
    log "installing slurmctld slurmd slurm-client munge"
    # Keep the package scripts from trying to start services (there is no init system here);
    # the image may already ship such a policy file, in which case it is left untouched.
    policy_tmp=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy_tmp=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy_tmp"
        chmod 755 "$policy_tmp"
        trap 'if [[ -n "$policy_tmp" ]]; then rm -f "$policy_tmp"; fi' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package scripts are chatty on stderr (no runlevel, policy-rc.d denied start, uid
    # warnings): keep their output in a log and show it only if something fails.
    apt_log=/var/log/start_slurm_apt.log
    if ! {
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
                slurmctld slurmd slurm-client munge
    } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "start_slurm.sh: installing the packages failed (log: $apt_log)" >&2
        exit 1
    fi
    if [[ -n "$policy_tmp" ]]; then
        rm -f "$policy_tmp"
        policy_tmp=""
    fi
fi

# --- 2. munge ---------------------------------------------------------------------------------
# The key must be owned by munge and readable by nobody else, or munged refuses to start.
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if running munged; then
    log "munged already running"
else
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
fi
# Check that credentials can be created and decoded before going on.
munge_ok=0
for _ in $(seq 20); do
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        munge_ok=1
        break
    fi
    sleep 0.5
done
if ((munge_ok == 0)); then
    echo "start_slurm.sh: munge does not work (munge -n | unmunge fails)" >&2
    munge -n | unmunge >&2 || true
    tail -n 20 /var/log/munge/munged.log >&2 || true
    exit 1
fi

# --- 3. slurm.conf ----------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc) # replaced by slurmd's own count below when it prints one (the same here)
# `slurmd -C` prints what slurmd itself will detect, e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
# Use its CPU layout as is (a mismatch would drain the node) and a RealMemory a little below
# the detected one (more than detected also drains the node; less is always fine).
hw=$(slurmd -C 2>/dev/null | head -n 1 || true)
get_hw() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
mem_mb=$(get_hw RealMemory)
if [[ -z "$mem_mb" ]]; then
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
fi
hw_cpus=$(get_hw CPUs)
[[ -n "$hw_cpus" ]] && cpus=$hw_cpus
real_mem=$((mem_mb * 95 / 100))
layout=""
for key in Boards SocketsPerBoard CoresPerSocket ThreadsPerCore; do
    v=$(get_hw "$key")
    [[ -n "$v" ]] && layout+=" $key=$v"
done
# Jobs that do not ask for memory get an equal share per CPU (otherwise a job without --mem
# would take the whole node and array tasks could not run side by side).
def_mem=$((real_mem / cpus))

install -d -m 0755 "$SLURM_ETC" "$SLURM_LOG" "$SLURM_STATE" "$SLURM_SPOOL"
conf_new=$(mktemp)
cat >"$conf_new" <<EOF
# Written by .ci/start_slurm.sh: a one-node cluster for CI and local tests.
ClusterName=ci
# NodeAddr/SlurmctldHost address 127.0.0.1 so nothing depends on DNS for the hostname.
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No mail on this machine (otherwise slurmctld logs "Configured MailProg is invalid").
MailProg=/bin/true

# No cgroups: plain process tracking and no task binding, so this works in containers/VMs
# without systemd or cgroup delegation.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${def_mem}

# Reject at submission a job that could never run here (e.g. more CPUs than the node has)
# instead of leaving it pending forever.
EnforcePartLimits=ALL
# A job whose afterok dependency failed is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend

# A node that was down because slurmd was not running comes back by itself.
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0

StateSaveLocation=${SLURM_STATE}
SlurmdSpoolDir=${SLURM_SPOOL}
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${SLURM_LOG}/slurmctld.log
SlurmdLogFile=${SLURM_LOG}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus}${layout} RealMemory=${real_mem} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF

conf_changed=0
if ! cmp -s "$conf_new" "$SLURM_ETC/slurm.conf"; then
    conf_changed=1
    install -m 0644 "$conf_new" "$SLURM_ETC/slurm.conf"
    log "wrote $SLURM_ETC/slurm.conf (${host}: ${cpus} cpus, RealMemory=${real_mem} MB)"
fi
rm -f "$conf_new"

# --- 4. daemons -------------------------------------------------------------------------------
dump_logs() {
    echo "---- sinfo ----" >&2
    sinfo -N -l >&2 || true
    scontrol show node "$host" >&2 || true
    for f in "$SLURM_LOG/slurmctld.log" "$SLURM_LOG/slurmd.log"; do
        echo "---- tail $f ----" >&2
        tail -n 30 "$f" >&2 || true
    done
}

if [[ $conf_changed -eq 1 ]] && { running slurmctld || running slurmd; }; then
    log "slurm.conf changed: restarting slurmctld and slurmd"
    "$(dirname "${BASH_SOURCE[0]}")/stop_slurm.sh"
fi

slurmd_started_at=0
if running slurmctld; then
    log "slurmctld already running"
else
    log "starting slurmctld"
    slurmctld # daemonizes itself
fi
if running slurmd; then
    log "slurmd already running"
else
    log "starting slurmd"
    slurmd_started_at=$(date +%s)
    slurmd # daemonizes itself
fi

# --- 5. wait for the node ---------------------------------------------------------------------
# After a restart slurmctld reports the node state it saved ("idle") before slurmd has even
# registered; so when we started slurmd, also wait until the controller has heard from it
# (the node's SlurmdStartTime is at least the time we started it).
slurmd_registered() {
    ((slurmd_started_at == 0)) && return 0
    local t
    t=$(scontrol show node -o "$host" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    [[ -n "$t" && "$t" != None ]] || return 1
    (($(date -d "$t" +%s 2>/dev/null || echo 0) >= slurmd_started_at - 1))
}
deadline=$((SECONDS + READY_TIMEOUT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -p "$PARTITION" -n "$host" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
    idle | mixed | allocated | completing)
        slurmd_registered && break
        state="$state (slurmd not registered yet)"
        ;;
    down* | drain* | drained* | fail*)
        # e.g. left down from an earlier run; it is ours, bring it back.
        log "node $host is $state: resuming"
        scontrol update nodename="$host" state=resume || true
        ;;
    esac
    sleep 1
done
case "$state" in
idle | mixed | allocated | completing) ;;
*)
    echo "start_slurm.sh: node $host not ready after ${READY_TIMEOUT}s (state: '${state}')" >&2
    dump_logs
    exit 1
    ;;
esac

log "slurm ready: partition ${PARTITION}, ${cpus} cpus (node ${host} ${state})"
