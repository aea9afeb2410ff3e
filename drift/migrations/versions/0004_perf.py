"""performance: the model's accuracy per night, estimated and realized

* ``night_performance``: one row per night and method: ``cbpe`` and ``atc``
  (estimated from the model's confidence, with a 95% band) and ``realized``
  (from feedback labels, with a Wilson 95% interval, per-class recall and
  macro-F1 in ``details``), beside the version's reference accuracy.
* ``v_daily_performance``: the same per monitor and night, for SQL dashboards
  (succeeded nights), next to ``v_daily_ood_rate``.

Revision ID: 0004_perf
Revises: 0003_ops
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drift.store.types

revision = "0004_perf"
down_revision = "0003_ops"
branch_labels = None
depends_on = None

V_DAILY_PERFORMANCE = """
CREATE VIEW v_daily_performance AS
SELECT m.name               AS monitor,
       b.batch_date         AS batch_date,
       p.method             AS method,
       p.accuracy           AS accuracy,
       p.accuracy_low       AS accuracy_low,
       p.accuracy_high      AS accuracy_high,
       p.n_rows             AS n_rows,
       p.reference_accuracy AS reference_accuracy,
       b.verdict            AS verdict
FROM night_performance p
JOIN batches b ON b.id = p.batch_id
JOIN monitored_models m ON m.id = b.monitor_id
WHERE b.status = 'succeeded'
"""


def upgrade() -> None:
    op.create_table(
        "night_performance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("accuracy_low", sa.Float(), nullable=False),
        sa.Column("accuracy_high", sa.Float(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("reference_accuracy", sa.Float(), nullable=True),
        sa.Column("details", drift.store.types.JSONDocument(), nullable=False),
        sa.Column("updated_at", drift.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"],
            name=op.f("fk_night_performance_batch_id_batches"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_night_performance")),
        sa.UniqueConstraint(
            "batch_id", "method", name=op.f("uq_night_performance_batch_id_method")
        ),
    )
    op.execute(V_DAILY_PERFORMANCE)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_daily_performance")
    op.drop_table("night_performance")
