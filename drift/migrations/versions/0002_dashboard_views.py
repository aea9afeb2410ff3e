"""dashboard views: v_daily_ood_rate, v_open_events

Plain SQL views that any SQL dashboard (Grafana, Metabase, Superset) can chart
without knowing the ORM. Portable between SQLite and Postgres.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

V_DAILY_OOD_RATE = """
CREATE VIEW v_daily_ood_rate AS
SELECT m.name        AS monitor,
       b.batch_date  AS batch_date,
       s.detector    AS detector,
       s.n_rows      AS n_rows,
       s.n_flagged   AS n_flagged,
       s.ood_rate    AS ood_rate,
       s.mean_score  AS mean_score,
       s.threshold   AS threshold,
       s.p_value     AS p_value,
       b.verdict     AS verdict
FROM detector_scores s
JOIN batches b ON b.id = s.batch_id
JOIN monitored_models m ON m.id = b.monitor_id
WHERE b.status = 'succeeded'
"""

V_OPEN_EVENTS = """
CREATE VIEW v_open_events AS
SELECT e.id           AS event_id,
       m.name         AS monitor,
       e.status       AS status,
       e.shift_type   AS shift_type,
       e.first_seen   AS first_seen,
       e.last_seen    AS last_seen,
       e.confirmed_on AS confirmed_on,
       e.opened_at    AS opened_at
FROM drift_events e
JOIN monitored_models m ON m.id = e.monitor_id
WHERE e.status <> 'resolved'
"""


def upgrade() -> None:
    op.execute(V_DAILY_OOD_RATE)
    op.execute(V_OPEN_EVENTS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_open_events")
    op.execute("DROP VIEW IF EXISTS v_daily_ood_rate")
