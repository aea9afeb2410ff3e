"""What the report shows, read from the event store into one typed :class:`ReportData`.

Only summaries are read here (batches, detector scores, stored tests, events,
adaptations); the per-row artifacts the histograms need are read by
:mod:`drift.report.panels`, shard by shard.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import stats
from drift.config import MonitorConfig, Settings
from drift.report.events import (
    AdaptationView,
    EventView,
    adaptations_in_range,
    event_counts,
    event_view,
    events_in_range,
)
from drift.stats import expected_flag_rate
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import (
    DetectorScore,
    DriftEvent,
    DriftEventBatch,
    DriftTest,
    ModelVersion,
    NightPerformance,
)

#: rows of the top-drifted-columns table
TOP_COLUMN_ROWS = 10


class ReportError(ValueError):
    """Nothing to report for the monitor and range asked for; the message says why."""


@dataclass(frozen=True)
class ReportData:
    """Everything the report draws, as small tables.

    ``nights`` is indexed by night (batch_id, n_rows, status, verdict, error, event,
    version_path); ``detector_nights`` has one row per night and detector
    (ood_rate, expected_rate, threshold, cusum, alarm_level); ``column_tests``
    the per-column tests of every night in range (with ``categorical``).
    """

    monitor: str
    detectors: list[str]
    nights: pd.DataFrame
    detector_nights: pd.DataFrame
    column_tests: pd.DataFrame
    events: list[EventView]
    adaptations: list[AdaptationView]
    #: the night the histograms compare with the reference
    night: date
    #: the night :func:`most_shifted_night` picks in range
    most_shifted: date
    #: events of this monitor a person closed as a false alarm, ever (the statistics line)
    false_alarms_total: int = 0
    #: every event of this monitor, ever
    events_total: int = 0
    #: one row per night and method (cbpe, atc, realized): accuracy, low, high, n_rows,
    #: reference_accuracy (drift.pipeline.performance); empty without estimators or labels
    performance: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def start(self) -> date:
        return self.nights.index.min()

    @property
    def end(self) -> date:
        return self.nights.index.max()

    def per_night(self, column: str) -> pd.DataFrame:
        """A ``detector_nights`` column as a night × detector table, with every night in range."""
        table = self.detector_nights.pivot(index="night", columns="detector", values=column)
        return table.reindex(self.nights.index).astype(float)


def _batches_in_range(
    session: Session, monitor_id: int, start: date | None, end: date | None
) -> pd.DataFrame:
    batches = repo.list_batches(session, monitor_id, start, end)
    if not batches:
        raise ReportError(f"no nights between {start or 'the first'} and {end or 'the last'}")
    versions: dict[int | None, str] = dict(
        session.execute(
            select(ModelVersion.id, ModelVersion.artifact_path).where(
                ModelVersion.monitor_id == monitor_id
            )
        ).all()
    )
    events = dict(
        session.execute(
            select(DriftEventBatch.batch_id, DriftEvent.id)
            .join(DriftEvent, DriftEvent.id == DriftEventBatch.event_id)
            .where(DriftEventBatch.batch_id.in_([b.id for b in batches]))
        ).all()
    )
    return pd.DataFrame(
        [
            {
                "night": b.batch_date,
                "batch_id": b.id,
                "n_rows": b.n_rows,
                "status": b.status,
                "verdict": b.verdict,
                "error": b.error,
                "event": events.get(b.id),
                "version_path": versions.get(b.model_version_id),
                "gate_state": b.gate_state or {},
                # the gate's CUSUM sums (before any reset) and alarm levels of the night
                "cusum_evidence": (b.summary or {}).get("evidence", {}).get("cusum", {}),
                # the in-sample sentence of drift.calibration.in_sample_warning, or None
                "calibration_warning": (b.summary or {}).get("calibration_warning"),
            }
            for b in batches
        ]
    ).set_index("night")


def _performance(session: Session, nights: pd.DataFrame) -> pd.DataFrame:
    rows = session.scalars(
        select(NightPerformance).where(NightPerformance.batch_id.in_(nights["batch_id"].tolist()))
    ).all()
    night_of = {batch_id: night for night, batch_id in nights["batch_id"].items()}
    columns = ["night", "method", "accuracy", "low", "high", "n_rows", "reference_accuracy"]
    return pd.DataFrame(
        [
            (night_of[p.batch_id], p.method, p.accuracy, p.accuracy_low, p.accuracy_high,
             p.n_rows, p.reference_accuracy)
            for p in rows
        ],
        columns=columns,
    )


def _stored_cusum(events: Iterable[DriftEvent]) -> dict[tuple[date, str], dict[str, float]]:
    """Pre-reset CUSUM sums and alarm levels kept in events' confirmation evidence.

    The gate resets a detector's sum to 0 after a confirm, so ``gate_state``
    alone shows 0 on the very night the CUSUM alarmed; the evidence keeps the
    value that crossed the alarm level. Nights decided since the gate's evidence is kept on
    ``batches.summary`` carry their own sums and levels; this serves the nights before.
    """
    stored = {}
    for event in events:
        confirmation = event.evidence.get("confirmation") or {}
        night = confirmation.get("batch_date")
        if night is None:  # not confirmed yet
            continue
        for detector, values in (confirmation.get("cusum") or {}).items():
            stored[(date.fromisoformat(night), detector)] = values
    return stored


def _detector_nights(
    session: Session, nights: pd.DataFrame, events: list[DriftEvent]
) -> pd.DataFrame:
    scores = session.scalars(
        select(DetectorScore).where(DetectorScore.batch_id.in_(nights["batch_id"].tolist()))
    )
    night_of = {batch_id: night for night, batch_id in nights["batch_id"].items()}
    stored_cusum = _stored_cusum(events)
    rows = []
    for score in scores:
        night = night_of[score.batch_id]
        stored = nights.at[night, "cusum_evidence"].get(score.detector) or stored_cusum.get(
            (night, score.detector), {}
        )
        tpr, m = score.details.get("tpr"), score.details.get("n_calibration")
        rows.append(
            {
                "night": night,
                "detector": score.detector,
                "n_rows": score.n_rows,
                "ood_rate": score.ood_rate,
                "expected_rate": expected_flag_rate(tpr, m) if tpr and m else math.nan,
                "threshold": score.threshold,
                "cusum": stored.get(
                    "sum", nights.at[night, "gate_state"].get("cusum", {}).get(score.detector)
                ),
                "alarm_level": stored.get("threshold"),
            }
        )
    columns = [
        "night",
        "detector",
        "n_rows",
        "ood_rate",
        "expected_rate",
        "threshold",
        "cusum",
        "alarm_level",
    ]
    return pd.DataFrame(rows, columns=columns).sort_values(["night", "detector"])


def _column_tests(session: Session, nights: pd.DataFrame) -> pd.DataFrame:
    column_tests = {s.name: s for s in stats.column_statistics()}
    night_of = {batch_id: night for night, batch_id in nights["batch_id"].items()}
    tests = session.scalars(
        select(DriftTest).where(
            DriftTest.batch_id.in_(nights["batch_id"].tolist()), DriftTest.test.in_(list(column_tests))
        )
    )
    columns = ["night", "test", "column", "raw_p_value", "p_value", "effect_size", "significant"]
    table = pd.DataFrame(
        [
            (
                night_of[t.batch_id],
                t.test,
                t.subject,
                t.statistic,
                t.p_value,
                t.effect_size,
                t.significant,
            )
            for t in tests
        ],
        columns=columns,
    )
    return table.assign(categorical=[column_tests[t].categorical for t in table["test"]])


def _act_tests(session: Session, nights: pd.DataFrame, monitor: MonitorConfig) -> pd.DataFrame:
    """Every night's act-family tests (night, test, subject, p_value, effect_size, min_effect)."""
    night_of = {batch_id: night for night, batch_id in nights["batch_id"].items()}
    tests = session.scalars(
        select(DriftTest).where(
            DriftTest.batch_id.in_(list(night_of)),
            DriftTest.test.in_(list(monitor.gate.act_tests)),
        )
    )
    rows = [
        (
            night_of[t.batch_id],
            t.test,
            t.subject,
            t.p_value,
            t.effect_size,
            monitor.gate.min_effect.get(t.test, 0.0),
        )
        for t in tests
    ]
    columns = ["night", "test", "subject", "p_value", "effect_size", "min_effect"]
    return pd.DataFrame(rows, columns=columns)


def most_shifted_night(act_tests: pd.DataFrame) -> date:
    """The night whose strongest act-family test is strongest, judged as the gate judges.

    Each night's strongest test is its smallest p-value among tests whose effect reaches
    the gate's minimum (effect-less p-values first count only when no night has one);
    p-values that underflow alike are told apart by the larger effect over its minimum.

    >>> tests = pd.DataFrame({"night": [1, 1, 2, 3], "test": ["a"] * 4, "subject": [""] * 4,
    ...     "p_value": [0.2, 1e-30, 0.0, 1e-9], "effect_size": [0.9, 0.01, 0.3, 0.5],
    ...     "min_effect": [0.05] * 4})
    >>> int(most_shifted_night(tests))
    2
    """
    strong = act_tests[act_tests["effect_size"] >= act_tests["min_effect"]]
    ranked = (strong if not strong.empty else act_tests).assign(
        excess=lambda t: t["effect_size"] - t["min_effect"]
    )
    return ranked.sort_values(["p_value", "excess"], ascending=[True, False]).iloc[0]["night"]


def top_columns(column_tests: pd.DataFrame, night: date) -> pd.DataFrame:
    """The night's per-column tests, most telling first, with how many nights in range each
    column was flagged.

    Order: drifted tonight (BH, the gate's FDR) first; among those, columns flagged on fewer
    nights of the range first — a column flagged every night is a standing difference between
    reference and production, not tonight's shift; then smallest BH p-value, largest effect.
    """
    flagged = column_tests[column_tests["significant"].astype(bool)].groupby("column").size()
    tonight = column_tests[column_tests["night"] == night].copy()
    tonight["nights_flagged"] = tonight["column"].map(flagged).fillna(0).astype(int)
    tonight["quiet"] = ~tonight["significant"].astype(bool)
    ranked = tonight.sort_values(
        ["quiet", "nights_flagged", "p_value", "effect_size"], ascending=[True, True, True, False]
    )
    return ranked.drop(columns="quiet").head(TOP_COLUMN_ROWS).reset_index(drop=True)


def load_report_data(
    settings: Settings,
    monitor: MonitorConfig,
    start: date | None = None,
    end: date | None = None,
    night: date | None = None,
) -> ReportData:
    """Read what the report shows for ``monitor`` between ``start`` and ``end`` (inclusive).

    Parameters
    ----------
    settings, monitor
        where the event store is; which monitor.
    start, end
        the range of nights; None: from the first / to the last stored night.
    night
        the night the histograms compare with the reference; None: the most
        shifted night in range by the gate's act-family tests (:func:`most_shifted_night`).

    Raises
    ------
    ReportError
        unknown monitor, no nights in range, or ``night`` not a scored night in range.
    """
    with session_scope(settings.db_url) as session:
        monitor_row = repo.get_monitor_row(session, monitor.name)
        if monitor_row is None:
            raise ReportError(f"monitor '{monitor.name}' has no nights in the event store")
        nights = _batches_in_range(session, monitor_row.id, start, end)
        first, last = nights.index.min(), nights.index.max()
        events = events_in_range(session, monitor_row.id, first, last)
        detector_nights = _detector_nights(session, nights, events)
        if detector_nights.empty:
            raise ReportError(f"monitor '{monitor.name}': no scored nights in range")
        act_tests = _act_tests(session, nights, monitor)
        most_shifted = (
            most_shifted_night(act_tests) if not act_tests.empty else detector_nights["night"].iloc[0]
        )
        false_alarms, n_events = event_counts(session, monitor_row.id)
        if night is None:
            night = most_shifted
        elif night not in set(detector_nights["night"]):
            raise ReportError(f"{night} is not a scored night of '{monitor.name}' in range")
        return ReportData(
            monitor=monitor.name,
            detectors=sorted(detector_nights["detector"].unique()),
            nights=nights.drop(columns=["gate_state", "cusum_evidence"]),
            detector_nights=detector_nights,
            column_tests=_column_tests(session, nights),
            events=[event_view(session, e) for e in events],
            adaptations=adaptations_in_range(session, monitor_row.id, first, last, [e.id for e in events]),
            night=night,
            most_shifted=most_shifted,
            false_alarms_total=false_alarms,
            events_total=n_events,
            performance=_performance(session, nights),
        )
