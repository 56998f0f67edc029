#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster when it is not running, lets the
# current user in by peer authentication, and gives it the settings of a
# test cluster (below). Idempotent.
#
# This cluster is the project's own dev/test cluster: it holds the fleets
# that tests generate and drop again, never data anyone needs. The tests
# create and drop hundreds of databases, and every DROP DATABASE in
# PostgreSQL 15 waits for an immediate checkpoint; with durable settings on
# a disk shared with other work each of those waits for fsync, which made
# one sequence of the model-based tests (internal/model) take 10 to 45 s.
# So the cluster runs with
#   fsync = off, synchronous_commit = off, full_page_writes = off
# which trades crash safety for speed: a crash or power loss of the host
# (not of PostgreSQL alone) can corrupt this cluster, and the remedy is to
# recreate it. Do not point these scripts at a cluster that holds real
# data; FLEETSAFE_PG_DURABLE=1 keeps (and restores) the durable settings.
set -euo pipefail

psql_admin() { psql -h /var/run/postgresql -d postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }

if ! psql_admin 'select 1' >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "pg-up: PostgreSQL is not reachable and starting it needs root" >&2
    exit 1
  fi
  cluster_version=${PG_VERSION:-15}
  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$cluster_version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
    pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start
  fi
  # Up to a minute: a fresh machine busy with the rest of make test
  # starts the cluster slowly (the loop ends as soon as it answers).
  for _ in $(seq 1 120); do
    runuser -u postgres -- psql -d postgres -Atqc 'select 1' >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! runuser -u postgres -- psql -d postgres -Atqc "select 1 from pg_roles where rolname='$(id -un)'" | grep -q 1; then
    runuser -u postgres -- createuser -s "$(id -un)"
  fi
  psql_admin 'select 1' >/dev/null
  echo "pg-up: PostgreSQL is running and $(id -un) can connect"
fi

# The test cluster's settings (see the top of this file). All three take
# effect on a reload; ALTER SYSTEM keeps them across restarts.
if [ "${FLEETSAFE_PG_DURABLE:-0}" = 1 ]; then
  want_fsync=on want_sync=on want_fpw=on
else
  want_fsync=off want_sync=off want_fpw=off
fi
current=$(psql_admin "select current_setting('fsync') || ' ' || current_setting('synchronous_commit') || ' ' || current_setting('full_page_writes')")
if [ "$current" != "$want_fsync $want_sync $want_fpw" ]; then
  if [ "$(psql_admin 'select rolsuper from pg_roles where rolname = current_user')" != t ]; then
    echo "pg-up: $(id -un) is not a superuser: the cluster keeps fsync/synchronous_commit/full_page_writes = $current (tests run slower)" >&2
    exit 0
  fi
  psql_admin "alter system set fsync = $want_fsync" >/dev/null
  psql_admin "alter system set synchronous_commit = $want_sync" >/dev/null
  psql_admin "alter system set full_page_writes = $want_fpw" >/dev/null
  psql_admin 'select pg_reload_conf()' >/dev/null
  # The reload is asynchronous: wait until new sessions see it.
  for _ in $(seq 1 20); do
    [ "$(psql_admin "select current_setting('fsync')")" = "$want_fsync" ] && break
    sleep 0.25
  done
  echo "pg-up: test-cluster settings fsync=$want_fsync synchronous_commit=$want_sync full_page_writes=$want_fpw (was: $current)"
fi
