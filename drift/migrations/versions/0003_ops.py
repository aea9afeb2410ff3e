"""ops: a person acts on events (ack, close, reopen), adaptation leases, an audit log

* ``drift_events``: who acknowledged it and when; how a person closed it
  (``closed_as`` false-alarm | handled, by, when, note); the adaptation lease
  (``adapting_since``, ``lease_owner``, ``heartbeat_at``) that `drift reset`
  checks before it clears a stale ``adapting``.
* ``audit_log``: one row per thing a person (or the system on a person's
  behalf) did to a monitor: ack, close, reopen, reset, rollback.
* ``v_open_events``: open means warning / confirmed / adapting (a closed event
  is not open), and it shows who acknowledged an event.

Revision ID: 0003_ops
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import drift.store.types

revision = "0003_ops"
down_revision = "0002"
branch_labels = None
depends_on = None

EVENT_COLUMNS = (
    ("acked_at", drift.store.types.UTCDateTime(timezone=True)),
    ("acked_by", sa.String(length=100)),
    ("closed_as", sa.String(length=20)),
    ("closed_by", sa.String(length=100)),
    ("closed_at", drift.store.types.UTCDateTime(timezone=True)),
    ("note", sa.Text()),
    ("adapting_since", drift.store.types.UTCDateTime(timezone=True)),
    ("lease_owner", sa.String(length=200)),
    ("heartbeat_at", drift.store.types.UTCDateTime(timezone=True)),
)

V_OPEN_EVENTS = """
CREATE VIEW v_open_events AS
SELECT e.id           AS event_id,
       m.name         AS monitor,
       e.status       AS status,
       e.shift_type   AS shift_type,
       e.first_seen   AS first_seen,
       e.last_seen    AS last_seen,
       e.confirmed_on AS confirmed_on,
       e.opened_at    AS opened_at,
       e.acked_at     AS acked_at,
       e.acked_by     AS acked_by
FROM drift_events e
JOIN monitored_models m ON m.id = e.monitor_id
WHERE e.status IN ('warning', 'confirmed', 'adapting')
"""

V_OPEN_EVENTS_0002 = """
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
    op.execute("DROP VIEW IF EXISTS v_open_events")
    with op.batch_alter_table("drift_events", schema=None) as batch_op:
        for name, type_ in EVENT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", drift.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", drift.store.types.JSONDocument(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitored_models.id"],
            name=op.f("fk_audit_log_monitor_id_monitored_models"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["drift_events.id"],
            name=op.f("fk_audit_log_event_id_drift_events"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.execute(V_OPEN_EVENTS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_open_events")
    op.drop_table("audit_log")
    with op.batch_alter_table("drift_events", schema=None) as batch_op:
        for name, _ in reversed(EVENT_COLUMNS):
            batch_op.drop_column(name)
    op.execute(V_OPEN_EVENTS_0002)
