"""The compose stack, checked without a Docker engine: the files it builds from and
mounts exist, every Airflow component is there with the settings Airflow 3 needs,
and the image installs exactly what the Makefile installs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # one logical line per instruction
    return (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")


def _copied_sources(dockerfile: str) -> list[str]:
    return [
        source
        for line in re.findall(r"^COPY\s+(.+)$", dockerfile, flags=re.MULTILINE)
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]


def test_build_context_dockerfile_and_copied_files_exist(compose, dockerfile):
    builds = [s["build"] for s in compose["services"].values() if "build" in s]
    assert builds
    for build in builds:
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).is_file()
    for source in _copied_sources(dockerfile):
        assert (REPO / source).exists(), source


def test_mounted_files_exist(compose):
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: undeclared volume {source}"


def test_every_airflow_component_runs_with_a_health_check(compose):
    services = compose["services"]
    for name, command in AIRFLOW_COMPONENTS.items():
        assert services[name]["command"] == command
        assert services[name]["healthcheck"]["test"], name
    assert services["postgres"]["healthcheck"] and services["redis"]["healthcheck"]
    # Celery workers and their broker come with the `celery` profile
    assert services["airflow-worker"]["profiles"] == services["redis"]["profiles"] == ["celery"]
    init = services["airflow-init"]
    assert init["entrypoint"][-1] == "/opt/driftwatch/docker/airflow-init.sh"
    for name in AIRFLOW_COMPONENTS:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_airflow_settings_and_the_drift_db_connection(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    password = "${POSTGRES_PASSWORD:-driftwatch}"  # substituted by compose
    connection = json.loads(env["AIRFLOW_CONN_DRIFT_DB"].replace(password, "secret"))
    assert connection["conn_type"] == "postgres" and connection["schema"] == "drift"
    assert env["DRIFT_DATABASE_URL"].endswith("@postgres:5432/drift")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/driftwatch/dags"
    # the two databases the connection strings name are created on first start
    init_sql = (DOCKER / "postgres-init.sql").read_text()
    assert "CREATE DATABASE airflow" in init_sql and "CREATE DATABASE drift" in init_sql


def test_dockerfile_installs_what_the_makefile_installs(dockerfile):
    makefile = (REPO / "Makefile").read_text()
    torch_pin = re.search(r"^TORCH\s*:=\s*torch==(\S+)", makefile, flags=re.MULTILINE).group(1)
    assert re.search(rf"^ARG TORCH_VERSION={re.escape(torch_pin)}$", dockerfile, flags=re.MULTILINE)
    assert 'pip install "torch==${TORCH_VERSION}"' in dockerfile
    # the constraints file pins the CPU build of that same torch
    constraints = (REPO / "constraints.txt").read_text()
    assert re.search(rf"^torch=={re.escape(torch_pin)}(\+cpu)?$", constraints, flags=re.MULTILINE)
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile

    make_install = re.findall(r"install -q (-c constraints\.txt -e '\.\[([\w,]+)\]')", makefile)
    assert make_install, "the Makefile's install line changed: update the Dockerfile and this test"
    extras = {extra for _, group in make_install for extra in group.split(",")}
    assert "airflow" in extras
    assert 'pip install -c constraints.txt -e ".[${EXTRAS}]"' in dockerfile
    assert "ARG EXTRAS=airflow\n" in dockerfile


def test_init_script_and_local_script_exist():
    assert (DOCKER / "airflow-init.sh").is_file()
    assert "airflow_local.sh prepare" in (DOCKER / "airflow-init.sh").read_text()
    assert (REPO / "scripts" / "airflow_local.sh").is_file()


def _compose_value(value: str, **env: str) -> str:
    """`value` after compose's `${NAME:-default}` substitution with `env`."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1], m[2]), value)


def test_the_celery_profile_runs_with_the_local_celery_settings(compose):
    """scripts/airflow_celery.sh (`make airflow-celery`, the Celery test) and the compose
    `celery` profile run the same Celery set-up; only host names and credentials differ.
    Every setting the script makes is compared: a new one must be added here."""
    printed = subprocess.run(
        ["bash", str(REPO / "scripts" / "airflow_celery.sh"), "env"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    local = dict(line.split("=", 1) for line in printed.splitlines())
    services = compose["services"]
    ours = {
        k: _compose_value(str(v), AIRFLOW_EXECUTOR="CeleryExecutor")  # as docker/README says
        for k, v in services["airflow-worker"]["environment"].items()
    }
    hosts = {"127.0.0.1:6379": "redis:6379", "127.0.0.1:8080": "airflow-apiserver:8080"}

    def on_compose_hosts(value: str) -> str:
        for here, there in hosts.items():
            value = value.replace(here, there)
        return value

    compared = {
        "AIRFLOW__CORE__EXECUTOR": lambda a, b: a == b == "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": lambda a, b: on_compose_hosts(a) == b,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": lambda a, b: on_compose_hosts(a) == b,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            lambda a, b: make_url(a).drivername == make_url(b).drivername
        ),
        # each side's metadata database (below)
        "AIRFLOW__CELERY__RESULT_BACKEND": lambda a, b: a.startswith("db+") and b.startswith("db+"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str.__eq__,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": str.__eq__,
        "AIRFLOW__API__PORT": str.__eq__,
        "AIRFLOW__CORE__LOAD_EXAMPLES": str.__eq__,
        "AIRFLOW__CORE__DAGS_FOLDER": lambda a, b: a.endswith("/dags") and b.endswith("/dags"),
    }
    assert set(local) - {"WORKERS"} == set(compared)
    for key, agree in compared.items():
        assert agree(local[key], ours[key]), f"{key}: script {local[key]!r}, compose {ours[key]!r}"
    # the result backend is each side's metadata database
    for settings in (local, ours):
        conn = settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert settings["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{conn}"
    assert services["airflow-worker"]["deploy"]["replicas"] == int(local["WORKERS"]) == 2
    assert services["airflow-apiserver"]["ports"] == [f"{local['AIRFLOW__API__PORT']}:8080"]
