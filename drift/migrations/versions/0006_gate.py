"""gate: what an event is about (``drift_events.kind``: shift | input | gradual)

``shift`` events follow the lifecycle warning -> confirmed -> adapting; ``input``
(columns moved while the OOD rates did not) and ``gradual`` (a small level change
that persists for weeks: re-baseline) are advisory warnings. Existing events are
shifts.

Revision ID: 0006_gate
Revises: 0003_ops
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0006_gate"
down_revision = "0004_perf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "drift_events",
        sa.Column("kind", sa.String(length=20), nullable=False, server_default="shift"),
    )


def downgrade() -> None:
    # SQLite rebuilds the table to drop a column: the view on it goes and comes back
    ops = importlib.import_module("drift.migrations.versions.0003_ops")
    op.execute("DROP VIEW IF EXISTS v_open_events")
    with op.batch_alter_table("drift_events") as batch:
        batch.drop_column("kind")
    op.execute(ops.V_OPEN_EVENTS)
