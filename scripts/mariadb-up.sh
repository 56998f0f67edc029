#!/usr/bin/env bash
# Installs MariaDB from Debian's packages when it is missing, starts the
# server without systemd when it is not running, and checks that the
# current user (root) gets in by unix-socket authentication, as Debian's
# packages set it up. Idempotent: a second run only checks.
set -euo pipefail
SOCKET=${MARIADB_SOCKET:-/run/mysqld/mysqld.sock}

reachable() {
  mariadb --protocol=socket -S "$SOCKET" -Nse 'select 1' >/dev/null 2>&1
}

if command -v mariadb >/dev/null 2>&1 && reachable; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "mariadb-up: MariaDB is not reachable on $SOCKET and installing or starting it needs root" >&2
  exit 1
fi

if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-dump >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  # policy-rc.d keeps the package scripts from starting the server (there
  # is no init system to hand it to); it is started below.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends mariadb-server mariadb-client
fi

datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket >/dev/null
fi
install -d -o mysql -g mysql -m 755 "$(dirname "$SOCKET")"

if ! reachable; then
  # mariadbd-safe restarts the server if it dies; it detaches with setsid
  # so that the shell that ran this script may exit.
  setsid mariadbd-safe --user=mysql --datadir="$datadir" --socket="$SOCKET" \
    --skip-networking=0 --bind-address=127.0.0.1 </dev/null >/dev/null 2>&1 &
  # Up to two minutes: the first start initialises InnoDB, slowly on a
  # loaded machine (the loop ends as soon as the server answers).
  for _ in $(seq 1 240); do
    reachable && break
    sleep 0.5
  done
fi
if ! reachable; then
  echo "mariadb-up: MariaDB did not answer on $SOCKET; see /var/log/mysql/error.log or $datadir/*.err" >&2
  exit 1
fi
echo "mariadb-up: MariaDB is running and $(id -un) can connect on $SOCKET"
