#!/usr/bin/env bash
# `make airflow`: Airflow 3 on this laptop (standalone: scheduler, dag-processor,
# api-server and triggerer; LocalExecutor; SQLite metadata) running this repo's
# DAGs on the configured monitors.
#
#   bash scripts/airflow_local.sh           prepare, then `airflow standalone` (UI on :8080)
#   bash scripts/airflow_local.sh prepare   prepare only: the event store schema (`drift init`),
#                                           the demo world when the demo monitor is configured
#                                           and not built yet, and a fit of every configured
#                                           monitor that has no active model version
#
# From the environment: AIRFLOW_HOME (default ./.airflow), DRIFT_HOME (default ./.drift;
# the event store is its SQLite file unless DRIFT_DATABASE_URL says otherwise),
# DRIFT_CONFIG (default: the demo monitor), AIRFLOW__API__PORT (default 8080).
# Ctrl-C or SIGTERM stops Airflow and every process it started. The compose stack's
# airflow-init and scripts/airflow_celery.sh run `prepare` too.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$repo/.venv/bin" ]; then PATH="$repo/.venv/bin:$PATH"; fi
# absolute: the config's paths resolve against them in every Airflow process
export DRIFT_HOME=$(realpath -m "${DRIFT_HOME:-$repo/.drift}")
if [ -n "${DRIFT_CONFIG:-}" ]; then export DRIFT_CONFIG=$(realpath -m "$DRIFT_CONFIG"); fi

prepare() {
  drift init
  python - <<'PY'
from drift import pipeline
from drift.config import Settings, load_monitors
from drift.demo import DEMO_MONITOR, build_world, demo_script
from drift.store import repo
from drift.store.db import session_scope

settings = Settings()
monitors = load_monitors(settings=settings)
world = settings.home / "demo"
if DEMO_MONITOR in {m.name for m in monitors} and not world.exists():
    print(f"building the demo world in {world} (as `drift demo` does)")
    build_world(settings.home, demo_script(24), seed=0, rows_per_night=800)
for monitor in monitors:
    with session_scope(settings.db_url) as session:
        row = repo.get_monitor_row(session, monitor.name)
        active = row is not None and repo.active_version(session, row.id) is not None
    if not active:
        print(f"fitting {monitor.name}: it has no active model version")
        pipeline.fit_monitor(settings, monitor)
print("monitors:", ", ".join(m.name for m in monitors))
PY
}

standalone() {
  export AIRFLOW_HOME=$(realpath -m "${AIRFLOW_HOME:-$repo/.airflow}")
  export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  local port=${AIRFLOW__API__PORT:-8080}
  # shellcheck source=lib/children.sh
  source "$repo/scripts/lib/children.sh"
  cat <<EOT
Airflow: http://127.0.0.1:$port (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)
New DAGs start paused: unpause drift_nightly__<monitor> in the UI to catch up its nights, or run
one night in the foreground, in another shell:
  export AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW__CORE__DAGS_FOLDER \\
    AIRFLOW__CORE__LOAD_EXAMPLES=False DRIFT_HOME=$DRIFT_HOME${DRIFT_CONFIG:+ DRIFT_CONFIG=$DRIFT_CONFIG}
  airflow dags test drift_nightly__<monitor> 2026-11-07
Ctrl-C stops Airflow.
EOT
  start_child standalone airflow standalone
  wait_children
}

case "${1:-run}" in
  prepare) prepare ;;
  run) prepare && standalone ;;
  *) echo "usage: $0 [prepare]" >&2; exit 2 ;;
esac
