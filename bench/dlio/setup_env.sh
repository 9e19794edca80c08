#!/usr/bin/env bash
# Make bench/.dlio-venv: DLIO 2.0.0 for bench/bench_dlio.py only (never a dl-driver dependency).
# Idempotent: an environment whose `dlio_benchmark` imports is reused as it is.
#
# DLIO's declared dependencies cannot be installed here (one is a stub that downloads from an unreachable
# host), so it goes in with --no-deps, and its real dependencies come from two places:
#   - torch, tensorflow, h5py, pandas, psutil, pillow, numpy: the project's .venv, seen through a .pth file
#     (no second copy of torch/tensorflow);
#   - mpi4py, mpich (mpiexec), hydra-core, omegaconf, pydftracer 1.0.2: installed into this environment.
# DLIO's TFRecord generator runs DALI's `tfrecord2idx`; bench/dlio/tfrecord2idx (a stand-in writing
# "offset length" per record) is copied into the environment's bin/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${DLDRIVER_VENV:-$root/.venv}"
venv="${DLIO_VENV:-$root/bench/.dlio-venv}"

if [ -f "$venv/.gitignore" ] && [ -x "$venv/bin/dlio_benchmark" ] && [ -x "$venv/bin/mpiexec" ] && [ -x "$venv/bin/tfrecord2idx" ] \
   && "$venv/bin/python" -c "import dlio_benchmark, mpi4py, hydra, omegaconf, dftracer" >/dev/null 2>&1; then
  exit 0
fi
echo "setting up $venv (DLIO 2.0.0, for the benchmark only)" >&2
[ -x "$venv/bin/python" ] || "$base/bin/python" -m venv "$venv"
# Never committed: the environment ignores itself (as Python 3.13's venv does).
echo '*' > "$venv/.gitignore"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_site="$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# Appended after the environment's own site-packages: what is installed here wins over the base.
echo "$base_site" > "$site/zz-dldriver-base.pth"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --no-deps dlio-benchmark==2.0.0
"${pip[@]}" hydra-core omegaconf pydftracer==1.0.2
# Its own MPI even when the base has one: mpi4py looks for libmpi under sys.prefix, and mpiexec must
# launch this environment's python.
"${pip[@]}" --ignore-installed --no-deps mpich mpi4py
install -m 0755 "$here/tfrecord2idx" "$venv/bin/tfrecord2idx"
"$venv/bin/python" -c "import dlio_benchmark.main, mpi4py, hydra, dftracer, torch"
