"""Alembic environment: one migration tree for SQLite and Postgres.

The URL comes from the caller (`drift init`, tests) through the Alembic config;
nothing is hard-coded here.
"""

from __future__ import annotations

from alembic import context

from drift.store.db import get_engine
from drift.store.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")

with get_engine(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can barely ALTER: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
