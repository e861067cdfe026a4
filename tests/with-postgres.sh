#!/usr/bin/env bash
# Runs COMMAND with a throwaway PostgreSQL cluster that this script starts and stops. The command
# finds it through DAGD_TEST_PG (a libpq conninfo without dbname).
# usage: tests/with-postgres.sh COMMAND [ARGS...]
# As root the cluster runs as the `postgres` account (PostgreSQL refuses to run as root).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: tests/with-postgres.sh COMMAND [ARGS...]" >&2; exit 2; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found (install package postgresql)" >&2; exit 1; }

cluster=$(mktemp -d /tmp/dagd-test-pg.XXXXXX)
as_pg=()
pg_user=$(id -un)
if [ "$(id -u)" = 0 ]; then
  pg_user=postgres
  chown postgres: "$cluster"
  as_pg=(runuser -u postgres --)
fi
chmod 755 "$cluster"
port=5432  # unix socket only: the port just names the socket file in $cluster

cleanup() {
  if [ -n "${pg_pid:-}" ]; then
    # Signal the postmaster itself: as root $pg_pid is runuser, which does not forward SIGINT.
    postmaster=$(head -n 1 "$cluster/data/postmaster.pid" 2>/dev/null || true)
    kill -INT "${postmaster:-$pg_pid}" 2>/dev/null || true
    wait "$pg_pid" 2>/dev/null || true
  fi
  rm -rf "$cluster"
}
trap cleanup EXIT

"${as_pg[@]}" "$pg_bin/initdb" -D "$cluster/data" -A trust -E UTF8 --locale=C.UTF-8 --no-sync -U "$pg_user" >"$cluster/initdb.log" 2>&1 \
  || { cat "$cluster/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$pg_bin/postgres" -D "$cluster/data" -k "$cluster" -p "$port" -c listen_addresses= \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
  >"$cluster/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 1 100); do
  "$pg_bin/pg_isready" -q -h "$cluster" -p "$port" && break
  sleep 0.1
done
"$pg_bin/pg_isready" -q -h "$cluster" -p "$port" || { cat "$cluster/postgres.log" >&2; exit 1; }

export DAGD_TEST_PG="host=$cluster port=$port user=$pg_user"
"$@"
