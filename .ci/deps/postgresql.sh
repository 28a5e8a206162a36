#!/usr/bin/env bash
# The PostgreSQL store's tests (tests/integration/server_postgres.rs) start a throw-away cluster of
# their own (initdb into a temp dir, its own port on 127.0.0.1, stopped at the end), run as the
# unprivileged `postgres` user: installs Debian's `postgresql` (which makes that user) when
# initdb, pg_ctl or the user is missing. The system's own cluster is never used.
set -euo pipefail

have() {
  id postgres >/dev/null 2>&1 || return 1
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && return 0
  done
  return 1
}

if have; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/integration/server_postgres.rs needs Debian's postgresql (initdb, pg_ctl and" \
    "the postgres user); install it (apt-get install postgresql) or run this script as root" >&2
  exit 1
fi
apt-get update -qq
# RUNLEVEL=1: invoke-rc.d starts no system cluster during the install; the tests start their own.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends postgresql
have || {
  echo "error: initdb, pg_ctl or the postgres user still missing after apt-get install postgresql" >&2
  exit 1
}
