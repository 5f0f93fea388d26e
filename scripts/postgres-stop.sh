#!/usr/bin/env bash
# Stops the server that scripts/postgres-start.sh started in DIR and removes DIR.
set -euo pipefail
dir=${1:?usage: postgres-stop.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -f "$dir/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  else "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
fi
rm -rf "$dir"
