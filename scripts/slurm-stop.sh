#!/usr/bin/env bash
# Stop what scripts/slurm-start.sh started, by pid file only (never by process name).
# SLURM_CLEAN=1 also wipes $SLURM_BASE state.
# The slurm.conf slurm-start.sh wrote is moved aside (slurm.conf.stopped; the next start writes a new
# one): with it in place and no controller, every Slurm client retries for MessageTimeout (10 s) before
# it fails, and Snakemake's Slurm plugin asks Slurm's configuration at every start, local runs included
# (snakemake -n: 11 s with the file, 1.6 s without, one run each).
set -uo pipefail
BASE=${SLURM_BASE:-/tmp/slurm}
RUN=$BASE/run
command -v scancel >/dev/null && scancel --user=root --full 2>/dev/null
stop_pidfile() {   # $1 = pid file
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
  kill "$pid"
  for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$1"; echo "stopped $(basename "$1" .pid) (pid $pid)"
}
stop_pidfile "$RUN/slurmd.pid"
stop_pidfile "$RUN/slurmctld.pid"
stop_pidfile "$RUN/slurmdbd.pid"
stop_pidfile "$BASE/mysqld-run/mysqld.pid"      # mariadbd handles SIGTERM as a clean shutdown
stop_pidfile /run/munge/munged.pid
CONF=/etc/slurm/slurm.conf
if [ -f "$CONF" ] && grep -qx "StateSaveLocation=$BASE/state" "$CONF"; then   # ours, not a site's own
  mv "$CONF" "$CONF.stopped" && echo "moved $CONF aside ($CONF.stopped)"
fi
if [ "${SLURM_CLEAN:-0}" = 1 ]; then
  rm -rf "$BASE/state" "$BASE/spool" "$BASE/mysql" "$BASE/mysqld-run" "$BASE/log" "$RUN"
  echo "cleaned $BASE"
fi
