#!/usr/bin/env bash
# Prints a digest of one sandbox instance: every path, mode, mtime, size,
# link target and content of its directories, and every row of its
# database. Two equal digests mean a byte-identical instance. Nothing of
# the host enters it (paths are relative to the host's directory, the
# database is not named), so an instance moved to another host of the
# sandbox (restore with relocate) compares equal to itself.
#   instance-digest.sh <sandbox root> <host> <instance> [database marker]
set -euo pipefail
root=$1 host=$2 name=$3 marker=${4:-fsdemo}
dir=$root/$host
{
  for d in "$dir/etc/tracim/$name" "$dir/srv/tracim/$name/data" "$dir/log/tracim/$name"; do
    if [ -d "$d" ]; then
      (cd "$d" && find . -printf '%p %m %T@ %s %l\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    else
      echo "absent ${d#"$dir/"}"
    fi
  done
  db="${marker}_${host#tracim-}_$name"
  if [ "$(psql -h /var/run/postgresql -d postgres -Atqc "select count(*) from pg_database where datname = '$db'")" = 1 ]; then
    psql -h /var/run/postgresql -d "$db" -Atqc "select md5(string_agg(c::text, ',' order by id)) from content c"
  else
    echo "absent database"
  fi
} | sha256sum | cut -c1-16
