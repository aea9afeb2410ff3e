#!/usr/bin/env bash
# Make sure a PostgreSQL answers on $DRIFT_TEST_PG_HOST:$DRIFT_TEST_PG_PORT (default
# 127.0.0.1:5432) with trust auth for user postgres, as the test suite expects.
# Where none answers: start the installed cluster, or install Debian's `postgresql`
# (needs root and apt), or fail with a clear message.
set -euo pipefail
host=${DRIFT_TEST_PG_HOST:-127.0.0.1}
port=${DRIFT_TEST_PG_PORT:-5432}

ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null || python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

if ready; then echo "postgres: reachable at $host:$port"; exit 0; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgres: not installed; installing Debian's postgresql"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  else
    echo "error: no PostgreSQL at $host:$port, and it cannot be installed here (needs root and apt-get)." >&2
    echo "       Start one (user postgres, trust auth) or set DRIFT_TEST_PG_HOST/PORT." >&2
    exit 1
  fi
fi

version=$(ls /etc/postgresql | sort -V | tail -1)
conf=/etc/postgresql/$version/main
# the tests connect as postgres over TCP without a password
if ! grep -q "driftwatch-tests" "$conf/pg_hba.conf"; then
  sed -i "1i host all all 127.0.0.1/32 trust # driftwatch-tests\nhost all all ::1/128 trust # driftwatch-tests" "$conf/pg_hba.conf"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 30); do ready && break; sleep 1; done
ready || { echo "error: PostgreSQL $version started but does not answer on $host:$port" >&2; exit 1; }
psql -h "$host" -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h "$host" -p "$port" -U postgres -c "CREATE DATABASE test" >/dev/null
echo "postgres: started $version at $host:$port"
