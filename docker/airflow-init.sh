#!/usr/bin/env bash
# One-off set-up of the compose stack, run by the `airflow-init` service before
# the Airflow components start: Airflow's metadata schema, the admin password,
# the event store schema and (for the demo monitor) the demo world.
set -euo pipefail

airflow db migrate

# SimpleAuthManager reads the users' passwords from this file (user `admin`)
python -c 'import json, os; print(json.dumps({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))' \
  > "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"

bash /opt/driftwatch/scripts/airflow_local.sh prepare
