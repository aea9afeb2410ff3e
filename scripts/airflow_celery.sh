#!/usr/bin/env bash
# `make airflow-celery`: this repo's DAGs under Airflow 3's CeleryExecutor on this machine:
# Redis as the broker, Postgres as Airflow's metadata database and Celery's result
# backend, and the processes Airflow 3 needs for it: api-server (the UI and the task
# execution API the workers report to), scheduler, dag-processor and two Celery
# workers, worker-1 and worker-2 (each reports its own host name in the task instances).
# No triggerer: these DAGs defer nothing.
#
#   bash scripts/airflow_celery.sh            prepare the event store and monitors (as `make
#                                             airflow` does), migrate, start everything, wait
#   bash scripts/airflow_celery.sh services   migrate and start, without the prepare step
#   bash scripts/airflow_celery.sh env        print the Airflow settings it runs with (no secrets)
#
# Ctrl-C or SIGTERM stops every process it started. The settings, all overridable from the
# environment (the docker compose `celery` profile uses the same ones):
#   AIRFLOW_HOME                      ./.airflow-celery (logs/: one log per process; run/: pids)
#   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN  postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_celery
#                                     (created when missing; Celery's result backend is the same database)
#   AIRFLOW__CELERY__BROKER_URL       redis://127.0.0.1:6379/0
#   AIRFLOW__OPERATORS__DEFAULT_QUEUE default (the queue the workers listen on)
#   AIRFLOW_API_PORT                  8080
#   AIRFLOW__CELERY__WORKER_CONCURRENCY  2 (task slots per worker)
#   DRIFT_HOME, DRIFT_CONFIG, DRIFT_DATABASE_URL or AIRFLOW_CONN_DRIFT_DB: as for `make airflow`
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$repo/.venv/bin" ]; then PATH="$repo/.venv/bin:$PATH"; fi
# shellcheck source=lib/children.sh
source "$repo/scripts/lib/children.sh"

export AIRFLOW_HOME=$(realpath -m "${AIRFLOW_HOME:-$repo/.airflow-celery}")
export DRIFT_HOME=$(realpath -m "${DRIFT_HOME:-$repo/.drift}")
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_celery}
export AIRFLOW__CELERY__BROKER_URL=${AIRFLOW__CELERY__BROKER_URL:-redis://127.0.0.1:6379/0}
# Celery's SQLAlchemy result backend: the metadata database, as `db+<url>`
export AIRFLOW__CELERY__RESULT_BACKEND=${AIRFLOW__CELERY__RESULT_BACKEND:-db+${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN}}
export AIRFLOW__CELERY__WORKER_CONCURRENCY=${AIRFLOW__CELERY__WORKER_CONCURRENCY:-2}
export AIRFLOW__OPERATORS__DEFAULT_QUEUE=${AIRFLOW__OPERATORS__DEFAULT_QUEUE:-default}
api_port=${AIRFLOW_API_PORT:-8080}
export AIRFLOW__API__PORT=$api_port
# workers and the scheduler reach the task execution API here (Airflow 3)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$api_port/execution/
# shared by every process: signs the execution API's tokens
export AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}
workers=(worker-1 worker-2)

create_database() {
  python - <<'PY'
import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as conn:
    if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}):
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
admin.dispose()
PY
}

services() {
  mkdir -p "$AIRFLOW_HOME/logs" "$AIRFLOW_HOME/run"
  export CHILD_LOGS="$AIRFLOW_HOME/logs" CHILD_PIDS="$AIRFLOW_HOME/run"
  create_database
  airflow db migrate >"$CHILD_LOGS/db-migrate.log" 2>&1 \
    || { tail -n 30 "$CHILD_LOGS/db-migrate.log" >&2; exit 1; }
  start_child api-server airflow api-server --port "$api_port"
  start_child scheduler airflow scheduler
  start_child dag-processor airflow dag-processor
  local worker
  for worker in "${workers[@]}"; do
    # --skip-serve-logs: one machine, one logs folder (and no clash on the log server's port)
    DRIFT_WORKER_HOSTNAME=$worker \
      AIRFLOW__CORE__HOSTNAME_CALLABLE=worker_hostname.hostname \
      PYTHONPATH="$repo/scripts/lib${PYTHONPATH:+:$PYTHONPATH}" \
      start_child "$worker" airflow celery worker --celery-hostname "$worker@%h" \
      --queues "$AIRFLOW__OPERATORS__DEFAULT_QUEUE" --skip-serve-logs
  done
  cat <<EOT
Airflow (CeleryExecutor): http://127.0.0.1:$api_port  logs: $CHILD_LOGS/<process>.log
Workers ${workers[*]} on queue '$AIRFLOW__OPERATORS__DEFAULT_QUEUE' of $AIRFLOW__CELERY__BROKER_URL.
Ctrl-C stops everything.
EOT
  wait_children
}

case "${1:-run}" in
  run) bash "$repo/scripts/airflow_local.sh" prepare && services ;;
  services) services ;;
  env)
    env | grep '^AIRFLOW__' | grep -v '^AIRFLOW__API_AUTH__JWT_SECRET=' | sort
    echo "WORKERS=${#workers[@]}"
    ;;
  *) echo "usage: $0 [services|env]" >&2; exit 2 ;;
esac
