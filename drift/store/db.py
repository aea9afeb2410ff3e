"""Engines, sessions and schema migrations for the event store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def migrations_dir() -> Path:
    """The Alembic folder shipped inside the package (``drift/migrations``), in a wheel too."""
    folder = Path(str(resources.files("drift") / "migrations"))
    if not (folder / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic migrations at {folder}: the driftwatch install is incomplete")
    return folder


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def normalise_url(url: str) -> str:
    """``url`` in the spelling SQLAlchemy 2 accepts; refuses databases the event store does not support.

    ``postgres://`` (Heroku's and libpq's spelling, which SQLAlchemy 2 rejects)
    becomes ``postgresql+psycopg2://``. The store runs on PostgreSQL and SQLite
    only: its upserts use their ``ON CONFLICT`` dialects.

    >>> normalise_url("postgres://u@db/drift")
    'postgresql+psycopg2://u@db/drift'
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "postgres":
        return "postgresql+psycopg2" + url[len(scheme):]
    backend = scheme.split("+", 1)[0]
    if backend not in ("postgresql", "sqlite"):
        raise ValueError(
            f"unsupported database '{backend}' (driftwatch stores events in PostgreSQL or SQLite)"
        )
    return url


@cache
def get_engine(url: str) -> Engine:
    """One pooled engine per URL for the process."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def _alembic_config(url: str):  # noqa: ANN202
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (what `drift init` runs)."""
    from alembic import command

    command.upgrade(_alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
