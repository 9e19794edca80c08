#!/usr/bin/env bash
# Run one benchmark cell: `dldriver run|checkpoint` with N ranks into FOLDER.
#   usage: run-cell.sh RANKS FOLDER run|checkpoint WORKLOAD.yaml [OVERRIDE ...] [OPTION ...]
# Under Slurm, a job given N tasks starts its N ranks with srun; the engine joins them with MPI
# (mpi4py over the venv's MPICH), which needs Slurm's PMI-2 (DLDRIVER_SRUN_MPI to choose another,
# e.g. pmix). Elsewhere the engine starts its own N rank processes. Inside a Slurm job it leaves
# slurm.json beside summary.json so that the aggregate can prove which job produced the run.
set -euo pipefail
ranks=$1 folder=$2 command=$3
shift 3

if [ "$ranks" -gt 1 ] && [ "${SLURM_NTASKS:-0}" -ge "$ranks" ]; then
  srun --ntasks="$ranks" --mpi="${DLDRIVER_SRUN_MPI:-pmi2}" --kill-on-bad-exit=1 dldriver "$command" "$@" --output "$folder" --quiet
else
  dldriver "$command" "$@" --ranks "$ranks" --output "$folder" --quiet
fi

if [ -n "${SLURM_JOB_ID:-}" ]; then
  printf '{"job_id": "%s", "ntasks": %s, "nodelist": "%s", "partition": "%s", "cluster": "%s"}\n' \
    "$SLURM_JOB_ID" "${SLURM_NTASKS:-1}" "${SLURM_JOB_NODELIST:-}" "${SLURM_JOB_PARTITION:-}" \
    "${SLURM_CLUSTER_NAME:-}" > "$folder/slurm.json"
fi
