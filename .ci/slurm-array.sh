#!/usr/bin/env bash
# The Slurm array job of examples/slurm/sweep.sbatch, for real: a single-node Slurm from Debian's
# packages (slurm-wlm, munge) runs a 3-run plan on the in-repository fixture as `sbatch --array`,
# one task per index (fp8q reads SLURM_ARRAY_TASK_ID); each task's report must equal the same
# index run locally with --index, and --report must table all three.
#
# Usage: .ci/slurm-array.sh PATH/TO/fp8q
# If the machine cannot install or start Slurm (no root, no apt, daemons refuse to start), the
# test says why and is skipped; once Slurm runs, any wrong result fails it.
set -euo pipefail
FP8Q="$(realpath "$1")"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
skip() { echo "SKIPPED (Slurm array job): $*"; exit 0; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || skip "not root: cannot install slurm-wlm"
  command -v apt-get >/dev/null || skip "no apt-get to install slurm-wlm"
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1)) \
    || skip "apt-get could not install slurm-wlm munge"
fi

W="$(mktemp -d)"
H="$(hostname)"
mkdir -p "$W/state" "$W/spool" "$W/log"
cat > "$W/slurm.conf" <<CONF
ClusterName=fp8qci
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$H CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$W/slurm.conf"

cleanup() {
  scancel --quiet --user="$(id -un)" 2>/dev/null || true
  for p in slurmd slurmctld; do
    [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true
  done
  sleep 1
  rm -rf "$W"
}
trap cleanup EXIT

if ! pgrep -x munged >/dev/null; then
  [ -f /etc/munge/munge.key ] || mungekey -c >/dev/null 2>&1 || skip "cannot create a munge key"
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  (runuser -u munge -- munged || munged --force) >/dev/null 2>&1 || skip "munged does not start"
fi
munge -n | unmunge >/dev/null 2>&1 || skip "munge does not authenticate"
slurmctld -f "$SLURM_CONF" >/dev/null 2>&1 || skip "slurmctld does not start ($(tail -2 "$W/log/slurmctld.log" 2>/dev/null))"
slurmd -f "$SLURM_CONF" >/dev/null 2>&1 || skip "slurmd does not start ($(tail -2 "$W/log/slurmd.log" 2>/dev/null))"
for _ in $(seq 1 30); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %t 2>/dev/null | grep -q idle || skip "the node never became idle ($(sinfo 2>&1 | tail -1))"
echo "single-node Slurm up: $(sinfo -h -o '%P %D %t %N')"

F="$REPO/crates/fp8q-ptq/tests/data/ptq_small"
cat > "$W/plan.toml" <<PLAN
[base]
architecture = "mobilenet_v2"
model-dir = "$F/mobilenet_v2_narrow.pth.tar"
images-dir = "$F/images"
batch-size = 3
max-val-images = 8
calib-transform = "val"
fp8-set-maxval = true
num-workers = 1
[axes]
fp8-mantissa-bits = [3, 4]
[[runs]]
name = "INT8"
qmethod = "symmetric_uniform"
PLAN
N="$("$FP8Q" sweep "$W/plan.toml" --list --out "$W/slurm" | grep -c '\[pending\]')"
[ "$N" = 3 ] || { echo "error: expected 3 runs, --list shows $N" >&2; exit 1; }

# the shipped script, as users submit it (resources scaled down for one small node)
FP8Q="$FP8Q" timeout "${SLURM_TEST_TIMEOUT:-300}" sbatch --wait --array=0-$((N - 1)) --cpus-per-task=1 --mem=500M --time=10 \
  -o "$W/log/task_%A_%a.log" "$REPO/examples/slurm/sweep.sbatch" "$W/plan.toml" --out "$W/slurm" \
  || { echo "error: the array job failed" >&2; tail -n 20 "$W"/log/*.log >&2; exit 1; }
for i in $(seq 0 $((N - 1))); do
  "$FP8Q" sweep "$W/plan.toml" --index "$i" --out "$W/local" >/dev/null 2>&1
done
python3 - "$W/slurm" "$W/local" <<'PY'
import json, os, sys
slurm, local = sys.argv[1:]
names = sorted(f for f in os.listdir(local) if f.endswith(".json"))
assert len(names) == 3, names
for n in names:
    a, b = (json.load(open(os.path.join(d, n))) for d in (slurm, local))
    for k in ("top1", "top5", "loss", "labels", "logits", "quantizers"):
        assert a[k] == b[k], f"{n}: {k} differs between the Slurm task and the local run"
print(f"Slurm array job: {len(names)} tasks, each report equal to the local --index run")
PY
"$FP8Q" sweep "$W/plan.toml" --report --out "$W/slurm" | tee "$W/report.md"
[ "$(grep -c '^| [0-9]' "$W/report.md")" = 3 ] || { echo "error: --report does not table 3 runs" >&2; exit 1; }
