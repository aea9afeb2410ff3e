"""The host name a Celery worker reports to Airflow (`[core] hostname_callable`).

Two workers started on one machine by scripts/airflow_celery.sh would otherwise
both report the machine's name in the task instances' `hostname` column; each
gets its own name from DRIFT_WORKER_HOSTNAME instead. On separate machines or
containers the variable is unset and the machine's name is used.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("DRIFT_WORKER_HOSTNAME") or socket.getfqdn()
