#!/usr/bin/env bash
# `make airflow`: Airflow 3 on this laptop (standalone: scheduler, dag-processor,
# api-server and triggerer; LocalExecutor; SQLite metadata) running this repo's
# DAGs on the demo monitor.
#
#   bash scripts/airflow_local.sh           prepare, then `airflow standalone` (UI on :8080)
#   bash scripts/airflow_local.sh prepare   prepare only: the event store schema (`drift init`),
#                                           and for the demo monitor its world (model, reference,
#                                           nightly batches) and fitted detectors, once
#
# AIRFLOW_HOME is ./.airflow; DRIFT_HOME defaults to ./.drift (the event store is its
# SQLite file unless DRIFT_DATABASE_URL says otherwise). The compose stack's
# airflow-init runs `prepare` too.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$repo/.venv/bin" ]; then PATH="$repo/.venv/bin:$PATH"; fi
# absolute: the demo config's paths resolve against it in every Airflow process
export DRIFT_HOME=$(realpath -m "${DRIFT_HOME:-$repo/.drift}")

prepare() {
  drift init
  python - <<'PY'
from drift import pipeline
from drift.config import Settings, get_monitor, load_monitors
from drift.demo import DEMO_MONITOR, build_world, demo_script

settings = Settings()
world = settings.home / "demo"
if DEMO_MONITOR in {m.name for m in load_monitors()} and not world.exists():
    print(f"building the demo world in {world} (as `drift demo` does) and fitting its detectors")
    build_world(settings.home, demo_script(24), seed=0, rows_per_night=800)
    pipeline.fit_monitor(settings, get_monitor(DEMO_MONITOR))
PY
}

standalone() {
  export AIRFLOW_HOME="$repo/.airflow"
  export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  cat <<EOT
Airflow: http://127.0.0.1:8080 (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)
New DAGs start paused. Unpause drift_nightly__digits_demo to catch up the demo nights from
2026-11-01, or run one night in the foreground, in another shell:
  export AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW__CORE__DAGS_FOLDER \\
    AIRFLOW__CORE__LOAD_EXAMPLES=False DRIFT_HOME=$DRIFT_HOME
  airflow dags test drift_nightly__digits_demo 2026-11-07
EOT
  exec airflow standalone
}

case "${1:-run}" in
  prepare) prepare ;;
  run) prepare && standalone ;;
  *) echo "usage: $0 [prepare]" >&2; exit 2 ;;
esac
