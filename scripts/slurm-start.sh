#!/usr/bin/env bash
# Start a REAL single-node Slurm cluster (munged + [mariadbd + slurmdbd] + slurmctld + slurmd)
# without systemd, on Debian 12 (slurm-wlm 22.05.8, munge 0.5.15, mariadb 10.11), for the workflow's
# Slurm tests and demos. Run as root.
#   SLURM_BASE=/tmp/slurm      where state, spool, logs, pid files and the DB live
#   SLURM_ACCOUNTING=0         0 (default): accounting_storage/none. sacct then fails, so the profile
#                              (profiles/slurm) polls with `slurm-status-command: squeue`, and
#                              MinJobAge=600 below keeps finished jobs visible to squeue (>= 120 s
#                              needed). Chosen because it needs 3 MB of packages instead of MariaDB.
#                              1: slurmdbd + MariaDB, so sacct works as on a production cluster.
# Every daemon binds 127.0.0.1 only (CommunicationParameters=NoInAddrAny + 127.0.0.1 addresses).
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/slurm}
ACCT=${SLURM_ACCOUNTING:-0}
RUN=$BASE/run; LOG=$BASE/log
mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool/slurmd"
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
say() { echo "[slurm-start +$(( $(date +%s) - t0 ))s] $*"; }

# 1. packages. Without systemd the postinst scripts cannot start services (policy-rc.d / no init): fine.
PKGS="slurmctld slurmd slurm-client munge"
[ "$ACCT" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""; for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "apt-get install$missing"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >"$LOG/apt.log" 2>&1
fi

# 2. munge (the package postinst generates /etc/munge/munge.key)
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! (munge -n | unmunge) >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged            # daemonizes; pid in /run/munge/munged.pid
  for i in $(seq 1 40); do (munge -n | unmunge) >/dev/null 2>&1 && break; sleep 0.25; done
fi
munge -n | unmunge | grep -q 'STATUS: *Success'
say "munged up"

# 3. slurm.conf (node line taken from `slurmd -C`, RealMemory reduced so the node is never drained)
HOST=$(hostname -s)
NODELINE=$(slurmd -C | head -1)
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODELINE")
NODELINE=$(sed "s/RealMemory=[0-9]*/RealMemory=$(( MEM * 90 / 100 ))/" <<<"$NODELINE")
if [ "$ACCT" = 1 ]; then
  ACCTCONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCTCONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# no cgroups, no systemd needed:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# bind to the configured addresses (127.0.0.1), never to every interface
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to squeue for 10 min (plugin's squeue status mode needs >= 3*40 s)
MinJobAge=600
JobCompType=jobcomp/none
$ACCTCONF
$NODELINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# 4. accounting: MariaDB (datadir under $BASE, TCP on 127.0.0.1:3306) + slurmdbd
if [ "$ACCT" = 1 ]; then
  DB=$BASE/mysql; DBRUN=$BASE/mysqld-run; SOCK=$DBRUN/mysqld.sock
  install -d -o mysql -g mysql "$DB" "$DBRUN"
  if [ ! -d "$DB/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$DB" --auth-root-authentication-method=socket \
      --skip-test-db >"$LOG/mariadb-install.log" 2>&1
  fi
  if ! mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
    setsid mariadbd --user=mysql --datadir="$DB" --socket="$SOCK" --pid-file="$DBRUN/mysqld.pid" \
      --bind-address=127.0.0.1 --port=3306 --skip-log-bin --innodb-buffer-pool-size=128M \
      --innodb-lock-wait-timeout=900 --log-error="$DBRUN/mysqld.log" </dev/null >/dev/null 2>&1 &
    for i in $(seq 1 120); do mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  mariadb --socket="$SOCK" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  say "mariadbd up"
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  [ -s "$RUN/slurmdbd.pid" ] && kill -0 "$(cat "$RUN/slurmdbd.pid")" 2>/dev/null || /usr/sbin/slurmdbd
  for i in $(seq 1 120); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.25; done
  sacctmgr -n list cluster >/dev/null
  say "slurmdbd up"
fi

# 5. slurmctld + slurmd (classic daemon mode; they write their pid files)
[ -s "$RUN/slurmctld.pid" ] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null || /usr/sbin/slurmctld
[ -s "$RUN/slurmd.pid" ]    && kill -0 "$(cat "$RUN/slurmd.pid")"    2>/dev/null || /usr/sbin/slurmd
for i in $(seq 1 120); do sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break; sleep 0.25; done
sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' || { sinfo -R; tail -20 "$LOG"/slurm*.log; exit 1; }
say "slurmctld + slurmd up"
sinfo
