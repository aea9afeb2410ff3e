"""Shared fixtures: real databases (SQLite and Postgres) and a built demo world.

Postgres tests run against ``DRIFT_TEST_POSTGRES_URL`` (default: the local
server, database ``postgres`` as the admin connection). Each test gets a fresh
database, migrated to head with Alembic, dropped afterwards. Outside CI an
unreachable server skips those tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from drift.store.db import upgrade


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m module args`` in a subprocess (``env``: its whole environment), output as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=os.environ.copy() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


ADMIN_URL = os.environ.get(
    "DRIFT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _postgres_admin():
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        message = f"PostgreSQL not reachable at {make_url(ADMIN_URL).render_as_string()}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: Postgres tests must run)")
        pytest.skip(message)
    return engine


def create_postgres_database(
    prefix: str = "drift_test", template: str | None = None
) -> tuple[str, callable]:
    """A new database, empty or a copy of the database at URL `template` (which must
    have no open connections); returns its URL and a function that drops it."""
    admin = _postgres_admin()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        from drift.store.db import get_engine

        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database migrated to head."""
    url, drop = create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    url, drop = create_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file migrated to head."""
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on Postgres."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's model, reference and 24 nights of landing data, built once per session.

    Tests copy nothing from it and write nothing into it: they use their own
    DRIFT_HOME for artifacts and point the monitor's paths here.
    """
    from drift.demo import build_world, demo_script

    home = tmp_path_factory.mktemp("demo_home")
    build_world(home, demo_script(24), seed=0, rows_per_night=600)
    return home


@pytest.fixture
def drift_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for a test: its own DRIFT_HOME (artifacts), the demo world's data."""
    from drift.config import Settings

    monkeypatch.delenv("DRIFT_CONFIG", raising=False)

    def make(db_url: str) -> Settings:
        return Settings(home=tmp_path / "home", database_url=db_url)

    return make


@pytest.fixture
def demo_monitor(demo_world: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo monitor config, with its paths in the session's demo world."""
    from drift.config import get_monitor

    monkeypatch.setenv("DRIFT_HOME", str(demo_world))  # base_dir: ${DRIFT_HOME}/demo
    monitor = get_monitor("digits_demo")
    return monitor
