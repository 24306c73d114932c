#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the end-to-end test of sharded runs
# (tests/slurm_e2e.rs). Debian/Ubuntu, as root or with passwordless sudo.
#
#   .ci/slurm.sh          install slurm-wlm + munge when missing, start munged, slurmctld and
#                         slurmd, wait (at most MODELCALL_SLURM_WAIT seconds, default 60) until the
#                         node is idle and `sbatch --wait --wrap true` works. Idempotent: when
#                         Slurm already answers, it only checks and says so.
#   .ci/slurm.sh status   exit 0 when Slurm answers and runs a job, 1 when not (installs nothing).
#   .ci/slurm.sh stop     stop the three daemons this script started (by their pid files).
#
# The cluster keeps Slurm's default MaxArraySize (1001), so the test of a run of more shards
# than that (split into several arrays by `modelcall submit`) meets the limit users meet.
#
# Exit status: 0 Slurm is up; 1 it could not be brought up (the reason is printed, with the tail
# of the daemon logs). Everything it writes: /etc/slurm/slurm.conf (only when absent or written by
# this script), /etc/munge/munge.key (only when absent), state and logs under $STATE below.
set -euo pipefail

STATE=${MODELCALL_SLURM_STATE:-/var/spool/modelcall-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# Written by modelcall .ci/slurm.sh"
WAIT=${MODELCALL_SLURM_WAIT:-60}
NODE=$(hostname -s)
MUNGE_PID=/run/munge/munged.pid

say() { echo "slurm.sh: $*"; }
die() {
    echo "slurm.sh: ERROR: $*" >&2
    for log in "$STATE/slurmctld.log" "$STATE/slurmd.log" /var/log/munge/munged.log; do
        if [ -s "$log" ] && [ -r "$log" ]; then
            echo "---- last lines of $log" >&2
            tail -n 15 "$log" >&2 || true
        fi
    done
    exit 1
}

SUDO=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        NOROOT=1
    fi
fi
need_root() {
    if [ "${NOROOT:-}" = 1 ]; then die "$1 needs root (or passwordless sudo); running as $(id -un)"; fi
}
as_root() { "${SUDO[@]}" "$@"; }

# Slurm answers and runs a trivial job (bounded by `timeout`).
job_runs() {
    timeout "${1:-20}" sbatch --quiet --wait --job-name=modelcall-ci-check --output=/dev/null --wrap true >/dev/null 2>&1
}
ctld_up() { timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { timeout 5 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true; }
alive() { [ -s "$1" ] && [ -d "/proc/$(cat "$1")" ]; }
munge_works() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
stop_hint() {
    say "to stop: .ci/slurm.sh stop   (or: kill \$(cat $STATE/slurmd.pid) \$(cat $STATE/slurmctld.pid) \$(cat $MUNGE_PID))"
}

case "${1:-start}" in
start) ;;
status)
    if command -v scontrol >/dev/null && ctld_up && job_runs 20; then say "Slurm is up (node $NODE: $(node_state))"; exit 0; fi
    say "Slurm is not up"; exit 1 ;;
stop)
    for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$MUNGE_PID"; do
        if alive "$f"; then say "stopping pid $(cat "$f") ($f)"; as_root kill "$(cat "$f")"; fi
    done
    exit 0 ;;
*) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac

started=$(date +%s)

# 1. Already up? Then nothing to do.
ours_running() {
    # With our slurm.conf, both our daemons must be alive (a job would otherwise wait in vain).
    ! grep -qF "$MARK" "$CONF" 2>/dev/null || { alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid"; }
}
if command -v scontrol >/dev/null && munge_works && ours_running && ctld_up && [ -n "$(node_state)" ] && job_runs 20; then
    say "Slurm already running (node $NODE: $(node_state)); nothing to do"
    stop_hint
    exit 0
fi

# 2. Install when missing.
missing=()
for b in sbatch squeue scancel sinfo slurmctld slurmd munged munge; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -gt 0 ]; then
    need_root "installing Slurm (missing: ${missing[*]})"
    command -v apt-get >/dev/null || die "Slurm is not installed (missing: ${missing[*]}) and there is no apt-get to install it"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    aptlog=${TMPDIR:-/tmp}/modelcall-slurm-apt.log
    apt_install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge; }
    # A fresh machine may have no package lists yet: update once and retry.
    if ! apt_install >"$aptlog" 2>&1 && ! { as_root apt-get update -q >>"$aptlog" 2>&1 && apt_install >>"$aptlog" 2>&1; }; then
        tail -n 20 "$aptlog" >&2 || true
        die "apt-get install slurm-wlm munge failed (log: $aptlog)"
    fi
    say "installed in $(( $(date +%s) - started )) s"
fi
export PATH="$PATH:/usr/sbin:/sbin"
need_root "starting the Slurm daemons"

# 3. munge: key, directories owned by the munge user, the daemon.
id munge >/dev/null 2>&1 || die "no 'munge' user after installing munge"
as_root mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if ! as_root test -s /etc/munge/munge.key; then
    say "creating /etc/munge/munge.key"
    as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
as_root chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
as_root chmod 0700 /etc/munge /var/lib/munge /var/log/munge
as_root chmod 0755 /run/munge
as_root chmod 0400 /etc/munge/munge.key
if ! munge_works; then
    say "starting munged"
    # --force: a socket left by a munged that died is not a reason to refuse.
    as_root runuser -u munge -- munged --force || die "munged did not start"
    for _ in $(seq 50); do munge_works && break; sleep 0.2; done
    munge_works || die "munged started but 'munge -n | unmunge' fails"
fi

# 4. slurm.conf: one node named after this host, everything local.
foreign=0
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    foreign=1
    say "using the existing $CONF (not written by this script)"
elif [ -e "$CONF" ] && { alive "$STATE/slurmctld.pid" || alive "$STATE/slurmd.pid"; }; then
    say "keeping $CONF (a daemon started with it is still running)"
else
    cpus=$(nproc)
    avail_mb=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
    mem=$(( avail_mb * 9 / 10 ))
    [ "$mem" -ge 256 ] || mem=256
    as_root mkdir -p /etc/slurm
    as_root tee "$CONF" >/dev/null <<EOF
$MARK: a one-node cluster for end-to-end tests.
# Rewritten when that script starts the daemons; stop them with '.ci/slurm.sh stop'.
ClusterName=modelcall-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=600
MaxArraySize=1001
MaxJobCount=100000
# Many tiny array tasks (the test of 1,200 shards): schedule on every completion without the
# default 3 s batch delay, and let up to 16 tasks share a CPU (they mostly wait on I/O).
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=2000
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
EOF
    say "wrote $CONF (node $NODE, CPUs=$cpus, RealMemory=${mem} MB)"
fi
as_root mkdir -p "$STATE/ctld" "$STATE/slurmd"

# 5. The daemons (each daemonizes and writes its pid file; with a foreign slurm.conf the pid
#    files are elsewhere, so look for the processes).
if [ "$foreign" = 1 ]; then
    ctld_running() { ctld_up; }
    slurmd_running() { pgrep -x slurmd >/dev/null; }
else
    ctld_running() { alive "$STATE/slurmctld.pid"; }
    slurmd_running() { alive "$STATE/slurmd.pid"; }
fi
if ! ctld_running; then
    say "starting slurmctld"
    as_root slurmctld || die "slurmctld did not start"
fi
if ! slurmd_running; then
    say "starting slurmd"
    as_root slurmd -N "$NODE" || die "slurmd did not start"
fi
daemons_started=$(date +%s)

# 6. Wait (bounded) for the node to be idle and a job to run.
deadline=$(( $(date +%s) + WAIT ))
resumed=0
state=""
while :; do
    state=$(node_state)
    case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | fail*)
        if [ "$resumed" = 0 ] && slurmd_running; then
            say "node $NODE is $state; resuming it"
            as_root scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || die "node $NODE not idle after ${WAIT} s (state: '${state:-no answer from slurmctld}'; $(timeout 5 sinfo -h -R 2>/dev/null | tr -s ' ' | head -n 1))"
    # A daemon that died (bad config, port taken) will not come back: say so now.
    if [ $(( $(date +%s) - daemons_started )) -ge 5 ]; then
        ctld_running || die "slurmctld is not running"
        slurmd_running || die "slurmd is not running"
    fi
    sleep 1
done
left=$(( deadline - $(date +%s) ))
[ "$left" -ge 5 ] || left=5
job_runs "$left" || die "node $NODE is $state but 'sbatch --wait --wrap true' did not succeed within ${left} s"

say "Slurm is up: node $NODE $state, a test job ran ($(( $(date +%s) - started )) s)"
stop_hint
