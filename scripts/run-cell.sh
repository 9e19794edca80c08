#!/usr/bin/env bash
# Run one benchmark cell: `dldriver run|checkpoint` with N ranks into FOLDER.
#   usage: run-cell.sh [--hosts H] RANKS FOLDER run|checkpoint WORKLOAD.yaml [OVERRIDE ...] [OPTION ...]
# --hosts H (the accelerator search over H hosts): the RANKS are spread RANKS/H per node over H nodes of
# the Slurm job; it needs Slurm (one machine cannot be H hosts).
# Inside a Slurm job (submitted with N tasks by the profile) the N ranks are started with srun and the
# engine joins them with MPI (mpi4py over the venv's MPICH), which needs Slurm's PMI-2
# (DLDRIVER_SRUN_MPI to choose another, e.g. pmix). Elsewhere the engine starts its own N processes.
# --overcommit: N may exceed the job's CPUs (profiles/slurm submits with --overcommit, and the plugin strips
# SLURM_OVERCOMMIT from the job's environment, so srun must be told again).
# The Slurm plugin strips SLURM_NTASKS & co. from the job's environment (only SLURM_JOB_ID stays), so
# the job's facts for slurm.json come from the controller itself.
set -euo pipefail
hosts=1
if [ "${1:-}" = "--hosts" ]; then hosts=$2; shift 2; fi
ranks=$1 folder=$2 command=$3
shift 3

spread=()
if [ "$hosts" -gt 1 ]; then
  if [ -z "${SLURM_JOB_ID:-}" ]; then
    echo "run-cell.sh: --hosts $hosts needs a Slurm job over $hosts nodes; this run is on one host" >&2
    exit 2
  fi
  spread=(--nodes="$hosts" --ntasks-per-node=$((ranks / hosts)))
fi

if [ "$ranks" -gt 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  srun --ntasks="$ranks" "${spread[@]}" --overcommit --mpi="${DLDRIVER_SRUN_MPI:-pmi2}" --kill-on-bad-exit=1 \
    dldriver "$command" "$@" --output "$folder" --quiet
else
  dldriver "$command" "$@" --ranks "$ranks" --output "$folder" --quiet
fi

# slurm.json beside summary.json: which Slurm job produced this run (read by `dldriver aggregate`).
if [ -n "${SLURM_JOB_ID:-}" ]; then
  job=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null || true)
  field() { tr ' ' '\n' <<<"$job" | sed -n "s/^$1=//p" | head -1; }
  ntasks=$(field NumTasks)
  printf '{"job_id": "%s", "ntasks": %s, "nodelist": "%s", "partition": "%s", "cluster": "%s"}\n' \
    "$SLURM_JOB_ID" "${ntasks:-null}" "$(field NodeList)" "$(field Partition)" "${SLURM_CLUSTER_NAME:-}" \
    > "$folder/slurm.json"
fi
