#!/usr/bin/env bash
# Starts (or stops) the PostgreSQL server the scale-out tests share, from Debian's packages,
# in a directory of its own under /tmp named after this checkout (a Unix socket only: no TCP
# port to collide with; not under target/, which the postgres user may not be able to reach
# when the checkout is in root's home).
# Redis needs no start here: each test starts its own redis-server on a socket.
#
#   eval "$(scripts/services.sh start)"   # prints `export PORTICO_TEST_POSTGRES_URL=...`
#   scripts/services.sh stop
#
# As root (CI's containers), the server runs as the `postgres` user, since PostgreSQL refuses
# to run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${TMPDIR:-/tmp}/portico-postgres-$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)"
pgbin=""
for candidate in /usr/lib/postgresql/*/bin; do
  if [ -x "$candidate/initdb" ]; then pgbin="$candidate"; fi
done

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ -z "$pgbin" ]; then
      echo "PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2
      exit 1
    fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_pg "$pgbin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # fsync off: test data need not survive a power cut, and the suite runs faster.
      as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
        "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    fi
    echo "export PORTICO_TEST_POSTGRES_URL='postgres://postgres@localhost/postgres?host=$dir'"
    ;;
  stop)
    if [ -n "$pgbin" ] && [ -f "$dir/data/PG_VERSION" ]; then
      as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: scripts/services.sh start|stop" >&2
    exit 2
    ;;
esac
