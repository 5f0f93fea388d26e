#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for Romana's tests and lab: a fresh cluster in DIR, listening on 127.0.0.1:PORT
# only, with a user and database "romana" (password "romana"). Prints the Npgsql connection string.
# Usage: scripts/postgres-start.sh DIR [PORT]     Stop it with scripts/postgres-stop.sh DIR
set -euo pipefail
dir=${1:?usage: postgres-start.sh DIR [PORT]}
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "postgres-start: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 3; }

# The server refuses to run as root: run it as the postgres user then.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  runuser -u postgres -- test -w "$dir" || { echo "postgres-start: the postgres user cannot reach $dir (choose a folder under /tmp)" >&2; exit 3; }
fi
as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -q -c "CREATE USER romana WITH PASSWORD 'romana' CREATEDB" -c "CREATE DATABASE romana OWNER romana" >/dev/null
echo "Host=127.0.0.1;Port=$port;Username=romana;Password=romana;Database=romana"
