#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/workflow/test_slurm.py (and by hand):
#
#   tests/slurm/cluster.sh start    install (Debian, as root) and start munge + slurmctld + slurmd
#   tests/slurm/cluster.sh status   exit 0 when the cluster answers and its node takes jobs
#   tests/slurm/cluster.sh stop     cancel leftover jobs, stop the three daemons, remove our configuration
#
# The node is this host (hostname -s) on 127.0.0.1 with all its CPUs, ~90 % of the memory slurmd
# sees, one partition `debug` and a fake GPU (GRES gpu:1 backed by /dev/null) so jobs asking for
# `--gpus=1` schedule on a machine without one. No slurmdbd: the Snakemake profile must query job
# states with squeue (MinJobAge=600 keeps finished jobs visible to it).
#
# Idempotent: running daemons are kept, a drained or down node is resumed. `start` writes
# /etc/slurm/slurm.conf and gres.conf only when no daemon runs and the files are absent or ours
# (first line = MARK); it refuses to touch someone else's configuration.
# Exit status: 0 ok, 1 failure, 3 SLURM unavailable here (not installed and not root, no apt-get,
# installation failed) -- tests skip on 3 only.
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurm-client)
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# l2h test cluster: written by tests/slurm/cluster.sh"
NODE=$(hostname -s)
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
WAIT_S=${L2H_SLURM_WAIT_S:-60}

say() { echo "cluster.sh: $*" >&2; }
unavailable() { say "$*"; exit 3; }
fail() { say "$*"; exit 1; }

installed() {
    [[ -x /usr/sbin/slurmctld && -x /usr/sbin/slurmd && -x /usr/sbin/munged ]] && command -v sbatch >/dev/null
}

install_packages() {
    installed && return 0
    [[ $EUID -eq 0 ]] || unavailable "SLURM is not installed and installing it needs root: as root run" \
        "'apt-get install --no-install-recommends ${PACKAGES[*]}' (or this script)"
    command -v apt-get >/dev/null || unavailable "SLURM is not installed and there is no apt-get (Debian/Ubuntu only)"
    say "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/tmp/l2h-slurm-apt.log 2>&1; then
        apt-get update -q >>/tmp/l2h-slurm-apt.log 2>&1 \
            && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>/tmp/l2h-slurm-apt.log 2>&1 \
            || unavailable "apt-get install ${PACKAGES[*]} failed (see /tmp/l2h-slurm-apt.log)"
    fi
}

# A live process of the given program behind the pid file.
alive() {
    local pidfile=$1 prog=$2 pid
    [[ -r $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -n $pid && -r /proc/$pid/comm && $(</proc/$pid/comm) == "$prog" ]]
}

ours() { [[ ! -e $1 ]] || [[ $(head -n 1 "$1") == "$MARK" ]]; }

write_config() {
    local cpus mem tmp
    cpus=$(nproc)
    mem=$(/usr/sbin/slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n $mem ]] || fail "'slurmd -C' reported no RealMemory"
    mem=$((mem * 9 / 10))
    tmp=$(mktemp)
    cat >"$tmp" <<CONF
$MARK
ClusterName=l2htest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
# finished jobs stay visible to squeue (Snakemake status queries) and scontrol for 10 min
MinJobAge=600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    install -m 644 "$tmp" "$CONF"
    # Count=1 needs a File= or the node drains; /dev/null stands in for the GPU device
    printf '%s\nAutoDetect=off\nNodeName=%s Name=gpu File=/dev/null Count=1\n' "$MARK" "$NODE" >"$tmp"
    install -m 644 "$tmp" "$GRES"
    rm -f "$tmp"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1; }

# The cluster answers and the node takes jobs (idle, or busy with someone's jobs).
usable() {
    munge_ok && scontrol ping 2>/dev/null | grep -q UP && [[ $(node_state) =~ ^(idle|mix|alloc)$ ]]
}

start() {
    install_packages
    if ! alive "$CTLD_PID" slurmctld && ! alive "$SLURMD_PID" slurmd; then
        [[ $EUID -eq 0 ]] || unavailable "the SLURM daemons are not running and starting them needs root"
        ours "$CONF" && ours "$GRES" || fail "$CONF or $GRES exists and was not written by this script: not touching it"
        write_config
    fi
    [[ $EUID -eq 0 ]] || { usable && return 0; unavailable "the SLURM cluster is not usable and fixing it needs root"; }
    if ! munge_ok; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    chown slurm:slurm /var/spool/slurmctld /var/log/slurm
    alive "$CTLD_PID" slurmctld || /usr/sbin/slurmctld
    alive "$SLURMD_PID" slurmd || /usr/sbin/slurmd
    local state i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        if scontrol ping 2>/dev/null | grep -q UP; then
            state=$(node_state)
            case $state in
                idle | mix | alloc) say "node $NODE is $state"; return 0 ;;
                drain* | down* | drng* | fail*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
            esac
        fi
        sleep 0.5
    done
    fail "node $NODE not idle after ${WAIT_S} s (state '$(node_state)'); see /var/log/slurm/slurmctld.log and slurmd.log"
}

stop_daemon() {
    local pidfile=$1 prog=$2 i
    alive "$pidfile" "$prog" || return 0
    kill "$(<"$pidfile")"
    for ((i = 0; i < 40; i++)); do
        alive "$pidfile" "$prog" || return 0
        sleep 0.25
    done
    fail "$prog (pid $(<"$pidfile")) did not stop"
}

stop() {
    local i
    ours "$CONF" || fail "$CONF was not written by this script: not stopping someone else's cluster"
    if alive "$CTLD_PID" slurmctld && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        squeue -h -o %i | xargs -r scancel
        for ((i = 0; i < 40; i++)); do
            [[ -z $(squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break
            sleep 0.25
        done
    fi
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
    stop_daemon "$MUNGE_PID" munged
    # Left behind, our configuration would name a controller that is gone: every SLURM client then
    # waits ~9 s for it, and so does every Snakemake start (the SLURM executor plugin runs
    # 'scontrol show config' when it is imported).
    local file
    for file in "$CONF" "$GRES"; do
        if ours "$file"; then rm -f "$file"; fi
    done
}

status() {
    installed || unavailable "SLURM is not installed"
    if usable; then
        say "up: node $NODE $(node_state)"
        return 0
    fi
    local ctld
    ctld=$(scontrol ping 2>/dev/null | grep -o 'UP\|DOWN' || true)
    say "not usable: munge $(munge_ok && echo up || echo down), slurmctld ${ctld:-DOWN}, node '$(node_state)'"
    return 1
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
