#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster when it is not running and lets
# the current user in by peer authentication. Idempotent.
set -euo pipefail
if psql -h /var/run/postgresql -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "pg-up: PostgreSQL is not reachable and starting it needs root" >&2
  exit 1
fi
cluster_version=${PG_VERSION:-15}
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$cluster_version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start
fi
for _ in $(seq 1 30); do
  runuser -u postgres -- psql -d postgres -Atqc 'select 1' >/dev/null 2>&1 && break
  sleep 0.5
done
if ! runuser -u postgres -- psql -d postgres -Atqc "select 1 from pg_roles where rolname='$(id -un)'" | grep -q 1; then
  runuser -u postgres -- createuser -s "$(id -un)"
fi
psql -h /var/run/postgresql -d postgres -Atqc 'select 1' >/dev/null
echo "pg-up: PostgreSQL is running and $(id -un) can connect"
