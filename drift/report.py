"""The monitor report: one self-contained HTML file per monitor and date range, and its plots.

What a user sees (docs/architecture.md §1, issue 6): per detector, the nightly OOD rate
against its calibrated expected rate and the CUSUM statistic against its alarm
level, with warning and confirmed nights shaded; score histograms of the
calibration (reference) scores against one night; the input columns that moved
most; the event log with its decisive tests; adaptations before/after; a
verdict timeline.

Size is bounded by design, not by the data (Evidently's HTML grows with the
rows and reaches hundreds of MB): the report reads only summaries
from the event store, the night's per-row *score* column shard by shard into
fixed bins, and the per-night input samples the pipeline already keeps
(``SAMPLE_ROWS``). A fixed number of figures are embedded as base64 PNG, inline
CSS, no scripts. The demo's report (24 nights, 2 detectors, 64 columns) is about 0.2 MB;
tests hold it under :data:`MAX_DEMO_REPORT_BYTES`.

Entry points: :func:`render_report` (the HTML) and :func:`render_plots` (the
same figures as PNG files, for e-mail and the README).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.config import MonitorConfig, Settings
from drift.stats import expected_flag_rate
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import (
    Adaptation,
    Batch,
    DetectorScore,
    DriftEvent,
    DriftEventBatch,
    DriftTest,
    ModelVersion,
)

#: the bound the tests hold the demo's report to (24 nights, 2 detectors, 64 columns)
MAX_DEMO_REPORT_BYTES = 2_000_000
#: per-column histograms drawn for the chosen night (the table lists more)
TOP_COLUMN_PLOTS = 4
TOP_COLUMN_ROWS = 10
HISTOGRAM_BINS = 40
DPI = 90
VERDICT_COLOURS = {"warn": "#f2c14e", "confirm": "#e4572e"}
COLUMN_TESTS = ("column_ks", "column_chisquare")


class ReportError(ValueError):
    """Nothing to report for the monitor and range asked for; the message says why."""


# -- what the report shows, read from the event store ----------------------------------------


@dataclass(frozen=True)
class EventView:
    """One drift event as the report shows it."""

    id: int
    status: str
    shift_type: str | None
    first_seen: date
    last_seen: date
    confirmed_on: date | None
    n_nights: int
    #: the night whose tests made the event: its confirmation night, else its first night
    decisive_night: date
    decisive_tests: pd.DataFrame
    reasons: list[str]
    resolution: str | None


@dataclass(frozen=True)
class ReportData:
    """Everything the report draws, as small tables.

    ``nights`` is indexed by night (n_rows, status, verdict, error, event,
    version_path); ``detector_nights`` has one row per night and detector
    (ood_rate, expected_rate, threshold, cusum, alarm_level); ``column_tests``
    the per-column tests of every night in range.
    """

    monitor: str
    detectors: list[str]
    nights: pd.DataFrame
    detector_nights: pd.DataFrame
    column_tests: pd.DataFrame
    events: list[EventView]
    adaptations: list[Adaptation]
    night: date

    @property
    def start(self) -> date:
        return self.nights.index.min()

    @property
    def end(self) -> date:
        return self.nights.index.max()


def _batches_in_range(
    session: Session, monitor_id: int, start: date | None, end: date | None
) -> pd.DataFrame:
    batches = repo.list_batches(session, monitor_id, start, end)
    if not batches:
        raise ReportError(f"no nights between {start or 'the first'} and {end or 'the last'}")
    versions = dict(
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
            }
            for b in batches
        ]
    ).set_index("night")


def _stored_cusum(events: Iterable[DriftEvent]) -> dict[tuple[date, str], dict[str, float]]:
    """Pre-reset CUSUM sums and alarm levels kept in events' confirmation evidence.

    The gate resets a detector's sum to 0 after a confirm, so ``gate_state``
    alone shows 0 on the very night the CUSUM alarmed; the evidence keeps the
    value that crossed the alarm level.
    """
    stored = {}
    for event in events:
        confirmation = event.evidence.get("confirmation") or {}
        night = confirmation.get("batch_date")
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
        stored = stored_cusum.get((night, score.detector), {})
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
    night_of = {batch_id: night for night, batch_id in nights["batch_id"].items()}
    tests = session.scalars(
        select(DriftTest).where(
            DriftTest.batch_id.in_(nights["batch_id"].tolist()), DriftTest.test.in_(COLUMN_TESTS)
        )
    )
    columns = ["night", "test", "column", "raw_p_value", "p_value", "effect_size", "significant"]
    return pd.DataFrame(
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


def _decisive_tests(
    session: Session, monitor_id: int, night: date, decisive: list[str]
) -> pd.DataFrame:
    """The stored tests the gate named decisive on ``night`` ("test:subject" or "test")."""
    tests = session.scalars(
        select(DriftTest)
        .join(Batch, Batch.id == DriftTest.batch_id)
        .where(Batch.monitor_id == monitor_id, Batch.batch_date == night)
    )
    named = {tuple(name.split(":", 1)) if ":" in name else (name, None) for name in decisive}
    rows = [
        (t.test, t.subject, t.p_value, t.effect_size)
        for t in tests
        if (t.test, t.subject) in named or (t.test, None) in named
    ]
    return pd.DataFrame(rows, columns=["test", "subject", "p_value", "effect_size"])


def _event_view(session: Session, event: DriftEvent) -> EventView:
    night = event.confirmed_on or event.first_seen
    summary = event.evidence.get("nights", {}).get(night.isoformat(), {})
    reasons = event.evidence.get("confirmation_reasons") or summary.get("reasons", [])
    return EventView(
        id=event.id,
        status=event.status,
        shift_type=event.shift_type,
        first_seen=event.first_seen,
        last_seen=event.last_seen,
        confirmed_on=event.confirmed_on,
        n_nights=len(event.evidence.get("nights", {})),
        decisive_night=night,
        decisive_tests=_decisive_tests(
            session, event.monitor_id, night, summary.get("decisive", [])
        ),
        reasons=list(reasons),
        resolution=event.evidence.get("resolution"),
    )


def _events_in_range(session: Session, monitor_id: int, start: date, end: date) -> list[DriftEvent]:
    return list(
        session.scalars(
            select(DriftEvent)
            .where(
                DriftEvent.monitor_id == monitor_id,
                DriftEvent.first_seen <= end,
                DriftEvent.last_seen >= start,
            )
            .order_by(DriftEvent.first_seen, DriftEvent.id)
        )
    )


def _adaptations(
    session: Session, monitor_id: int, start: date, end: date, event_ids: list[int]
) -> list[Adaptation]:
    """Adaptations of the range's events, or started within the range."""
    window = (
        datetime.combine(start, datetime.min.time(), UTC),
        datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
    )
    query = select(Adaptation).where(
        Adaptation.monitor_id == monitor_id,
        Adaptation.event_id.in_(event_ids)
        | ((Adaptation.started_at >= window[0]) & (Adaptation.started_at < window[1])),
    )
    return list(session.scalars(query.order_by(Adaptation.started_at, Adaptation.id)))


def most_shifted_night(detector_nights: pd.DataFrame) -> date:
    """The night whose largest OOD-rate excess over its expected rate is largest."""
    excess = detector_nights["ood_rate"] - detector_nights["expected_rate"].fillna(0.0)
    return excess.groupby(detector_nights["night"]).max().idxmax()


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
        shifted night in range (:func:`most_shifted_night`).

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
        events = _events_in_range(session, monitor_row.id, nights.index.min(), nights.index.max())
        detector_nights = _detector_nights(session, nights, events)
        if detector_nights.empty:
            raise ReportError(f"monitor '{monitor.name}': no scored nights in range")
        if night is None:
            night = most_shifted_night(detector_nights)
        elif night not in set(detector_nights["night"]):
            raise ReportError(f"{night} is not a scored night of '{monitor.name}' in range")
        return ReportData(
            monitor=monitor.name,
            detectors=sorted(detector_nights["detector"].unique()),
            nights=nights.drop(columns="gate_state"),
            detector_nights=detector_nights,
            column_tests=_column_tests(session, nights),
            events=[_event_view(session, e) for e in events],
            adaptations=_adaptations(
                session,
                monitor_row.id,
                nights.index.min(),
                nights.index.max(),
                [e.id for e in events],
            ),
            night=night,
        )


# -- histogram inputs, from artifacts (bounded memory) ---------------------------------------


@dataclass(frozen=True)
class HistogramPanel:
    """One panel: the share of reference rows and of the night's rows in each bin."""

    title: str
    edges: np.ndarray
    reference: np.ndarray
    night: np.ndarray
    #: a vertical line (a detector's threshold), if any
    marker: float | None = None
    #: category names for a categorical column (bins are then the categories)
    categories: list[str] | None = None


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def _parquet_min_max(files: Sequence[Path], column: str) -> tuple[float, float]:
    """A column's range from the parquet footers' statistics: no row is read."""
    low, high = math.inf, -math.inf
    for file in files:
        metadata = pq.ParquetFile(file).metadata
        index = metadata.schema.to_arrow_schema().get_field_index(column)
        for group in range(metadata.num_row_groups):
            statistics = metadata.row_group(group).column(index).statistics
            if statistics is None or not statistics.has_min_max:
                values = pq.read_table(file, columns=[column]).column(0).to_numpy()
                return min(low, float(np.nanmin(values))), max(high, float(np.nanmax(values)))
            low, high = min(low, statistics.min), max(high, statistics.max)
    return low, high


def score_panel(
    detector: str, calibration_scores: np.ndarray, shard_files: Sequence[Path], threshold: float
) -> HistogramPanel:
    """Calibration scores vs the night's per-row scores, read one shard at a time.

    Memory is bounded by a shard, not by the night: the bins come from the
    parquet statistics and the calibration scores, counts are summed per shard.
    """
    column = f"score__{detector}"
    low, high = _parquet_min_max(shard_files, column)
    edges = np.linspace(
        min(low, calibration_scores.min()), max(high, calibration_scores.max()), HISTOGRAM_BINS + 1
    )
    night_counts = np.zeros(HISTOGRAM_BINS)
    for file in shard_files:
        scores = pq.read_table(file, columns=[column]).column(0).to_numpy()
        night_counts += np.histogram(scores, edges)[0]
    return HistogramPanel(
        title=f"{detector} score",
        edges=edges,
        reference=_shares(np.histogram(calibration_scores, edges)[0]),
        night=_shares(night_counts),
        marker=threshold,
    )


def column_panel(
    column: str, reference: pd.Series, night: pd.Series, *, categorical: bool, label: str
) -> HistogramPanel:
    """A raw input column, reference sample vs the night's sample.

    ``categorical`` follows the column's stored test (chi-square): one bin per
    value, so a value the reference never saw shows as its own bar.
    """
    reference, night = reference.dropna(), night.dropna()
    if not categorical:
        edges = np.histogram_bin_edges(np.concatenate([reference, night]), bins=HISTOGRAM_BINS // 2)
        return HistogramPanel(
            f"{column} ({label})",
            edges,
            _shares(np.histogram(reference, edges)[0]),
            _shares(np.histogram(night, edges)[0]),
        )
    values = pd.concat([reference, night]).drop_duplicates()
    ordered = (
        values.sort_values()
        if pd.api.types.is_numeric_dtype(values)
        else values.astype(str).sort_values()
    )
    categories = ordered.astype(str).tolist()

    def counts(sample: pd.Series) -> np.ndarray:
        return sample.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy()

    return HistogramPanel(
        f"{column} ({label})",
        np.arange(len(categories) + 1) - 0.5,
        _shares(counts(reference)),
        _shares(counts(night)),
        categories=categories,
    )


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


def _night_panels(
    settings: Settings, monitor: MonitorConfig, data: ReportData
) -> tuple[list[HistogramPanel], list[HistogramPanel]]:
    """Score panels (per detector) and column panels (top drifted columns) for the chosen night.

    Artifacts may be gone (retention, a version deleted): a missing file leaves its panel out
    rather than failing the report; the HTML says so.
    """
    from drift.pipeline import scores_dir

    version_path = data.nights.at[data.night, "version_path"]
    if version_path is None or not Path(version_path).is_dir():
        return [], []
    version = Path(version_path)
    folder = scores_dir(settings, monitor, data.night)
    shards = sorted(folder.glob("shard-*.parquet"))
    tonight = data.detector_nights[data.detector_nights["night"] == data.night].set_index(
        "detector"
    )
    scores = [
        score_panel(
            detector,
            np.load(calibration, allow_pickle=False),
            shards,
            tonight.at[detector, "threshold"],
        )
        for detector in tonight.index
        if shards
        and (calibration := version / "calibration" / detector / "calibration_scores.npy").is_file()
    ]
    top = top_columns(data.column_tests, data.night).head(TOP_COLUMN_PLOTS)
    samples = sorted(folder.glob("sample-*.parquet"))
    reference_file = version / "reference_sample.parquet"
    if top.empty or not samples or not reference_file.is_file():
        return scores, []
    names = top["column"].tolist()
    reference = pd.read_parquet(reference_file, columns=names)
    night = pd.concat([pd.read_parquet(f, columns=names) for f in samples], ignore_index=True)
    columns = [
        column_panel(
            row.column,
            reference[row.column],
            night[row.column],
            categorical=row.test == "column_chisquare",
            label=f"BH p={row.p_value:.2g}",
        )
        for row in top.itertuples()
    ]
    return scores, columns


# -- figures ------------------------------------------------------------------------------------


def _pyplot():  # noqa: ANN202
    """pyplot on the Agg backend: reports render on servers with no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _shade_verdicts(ax: Any, verdicts: pd.Series) -> None:
    half_day = pd.Timedelta(hours=12)
    for night, verdict in verdicts.items():
        if verdict in VERDICT_COLOURS:
            ax.axvspan(
                night - half_day, night + half_day, color=VERDICT_COLOURS[verdict], alpha=0.25, lw=0
            )


def series_figure(
    values: pd.DataFrame,
    levels: pd.DataFrame,
    verdicts: pd.Series,
    event_marks: dict[date, str],
    *,
    title: str,
    ylabel: str,
    level_label: str,
    symlog: bool = False,
) -> bytes:
    """One line per detector over the nights, its reference level dashed in the same colour,
    warning/confirmed nights shaded and events labelled at the top."""
    from matplotlib.dates import DateFormatter
    from matplotlib.patches import Patch

    # timestamps, not dates: a night is shaded from 12 hours before to 12 hours after
    values, levels, verdicts = (
        x.set_axis(pd.to_datetime(x.index)) for x in (values, levels, verdicts)
    )
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(10, 3.4))
    _shade_verdicts(ax, verdicts)
    for i, detector in enumerate(values.columns):
        colour = f"C{i}"
        ax.plot(values.index, values[detector], marker="o", ms=3.5, color=colour, label=detector)
        if detector in levels and levels[detector].notna().any():
            ax.plot(
                levels.index,
                levels[detector],
                ls="--",
                lw=1.2,
                color=colour,
                drawstyle="steps-mid",
                label=f"{detector}: {level_label}",
            )
    if symlog:
        ax.set_yscale("symlog", linthresh=1.0)
    for night, label in event_marks.items():
        ax.annotate(
            label,
            (pd.Timestamp(night), 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#a02c10",
        )
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=c, alpha=0.25, label=v) for v, c in VERDICT_COLOURS.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=11, pad=14)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
    ax.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def histogram_figure(panels: Sequence[HistogramPanel], title: str, night_label: str) -> bytes:
    """Small multiples: reference vs night shares per bin, one panel each."""
    plt = _pyplot()
    n_cols = min(len(panels), 4)
    n_rows = math.ceil(len(panels) / n_cols)
    width = max(7.0, 2.6 * n_cols + 1.0)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(width, 2.5 * n_rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        ax.stairs(
            panel.reference, panel.edges, fill=True, alpha=0.35, color="C0", label="reference"
        )
        ax.stairs(panel.night, panel.edges, lw=1.5, color="C3", label=night_label)
        if panel.marker is not None:
            ax.axvline(panel.marker, color="k", ls="--", lw=1, label="threshold")
        panel_title = panel.title
        if max(panel.reference.max(), panel.night.max()) >= 0.5:
            # mass on one value would flatten every other bar, where the change is
            ax.set_yscale("log")
            panel_title += ", log scale"
        if panel.categories is not None:
            ax.set_xticks(range(len(panel.categories)), panel.categories, rotation=45, fontsize=7)
        ax.set_title(panel_title, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("share of rows", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _png(figure)


def _per_night(data: ReportData, column: str) -> pd.DataFrame:
    """A detector-nights column as a night × detector table, with every night in range."""
    table = data.detector_nights.pivot(index="night", columns="detector", values=column)
    return table.reindex(data.nights.index).astype(float)


def _event_marks(data: ReportData) -> dict[date, str]:
    return {
        (e.confirmed_on or e.first_seen): f"#{e.id} {e.shift_type or ''}".strip()
        for e in data.events
        if data.start <= (e.confirmed_on or e.first_seen) <= data.end
    }


def render_figures(
    settings: Settings, monitor: MonitorConfig, data: ReportData
) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by a short name."""
    verdicts, marks = data.nights["verdict"], _event_marks(data)
    figures = {
        "ood_rate": series_figure(
            _per_night(data, "ood_rate"),
            _per_night(data, "expected_rate"),
            verdicts,
            marks,
            title="OOD rate per night",
            ylabel="share of rows flagged",
            level_label="expected (calibrated)",
        ),
        "cusum": series_figure(
            _per_night(data, "cusum"),
            _per_night(data, "alarm_level").ffill().bfill(),
            verdicts,
            marks,
            title="CUSUM of the nightly flag count (reset to 0 after a confirm)",
            ylabel="CUSUM statistic (symlog)",
            level_label="alarm level",
            symlog=True,
        ),
    }
    score_panels, column_panels = _night_panels(settings, monitor, data)
    night_label = data.night.isoformat()
    if score_panels:
        figures["scores"] = histogram_figure(
            score_panels, f"Detector scores: calibration (reference) vs {night_label}", night_label
        )
    if column_panels:
        figures["columns"] = histogram_figure(
            column_panels, f"Top drifted input columns on {night_label} (samples)", night_label
        )
    return figures


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;font-size:14px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin-bottom:4px}.muted{color:#666}.summary span{margin-right:18px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.warn td{background:#fdf3d8}tr.confirm td{background:#fbe0d8}tr.failed td{background:#eee;color:#888}
.badge{display:inline-block;padding:1px 7px;border-radius:8px;font-size:12px;color:#fff;background:#888}
.badge.ok{background:#3a8d4f}.badge.warn{background:#c8961e}.badge.confirm,.badge.confirmed{background:#c4401d}
.badge.warning{background:#c8961e}.badge.resolved{background:#3a8d4f}.badge.adapting{background:#3465a4}
img{max-width:100%;display:block;margin:6px 0}.event{border-left:4px solid #c4401d;padding-left:12px;margin:14px 0}
"""


class _Markup(str):
    """HTML that a table cell inserts unescaped (built here from escaped parts)."""


class _Percent(float):
    """A rate that a table cell shows as a percentage."""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    """Numbers for a table cell: small p-values in scientific notation, rates as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, _Percent):
        return f"{value:.1%}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return _e(value)


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], row_classes: Iterable[str] = ()
) -> str:
    """An HTML table; cells that are numbers are right-aligned, strings are escaped,
    :class:`_Markup` cells are inserted as they are."""
    classes = list(row_classes)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td>{cell}</td>"
            if isinstance(cell, _Markup)
            else f'<td class="num">{_fmt(cell)}</td>'
            if isinstance(cell, int | float | np.number)
            else f"<td>{_fmt(cell)}</td>"
            for cell in row
        )
        css = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _badge(label: str | None) -> _Markup:
    return _Markup(f'<span class="badge {_e(label)}">{_e(label)}</span>') if label else _Markup("–")


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _figure_or_note(figures: dict[str, bytes], name: str, alt: str) -> str:
    if name in figures:
        return _image(figures[name], alt)
    return f"<p>No {_e(alt)}: the night's artifacts (scores, samples or calibration) are not available.</p>"


def _header(data: ReportData) -> str:
    verdicts = data.nights["verdict"].value_counts()
    versions = data.nights["version_path"].dropna().map(lambda p: Path(p).name).unique()
    counts = "".join(
        f"<span>{_badge(v)} {_plural(int(verdicts.get(v, 0)), 'night')}</span>"
        for v in ("ok", "warn", "confirm")
    )
    failed = int((data.nights["status"] == "failed").sum())
    return (
        f"<h1>driftwatch report: {_e(data.monitor)}</h1>"
        f'<p class="muted">nights {data.start} to {data.end} ({len(data.nights)} nights) · '
        f"detectors {_e(', '.join(data.detectors))} · model versions {_e(', '.join(versions))} · "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"
        f'<p class="summary">{counts}<span>{_plural(failed, "failed night")}</span><span>{_plural(len(data.events), "event")}</span></p>'
    )


def _timeline(data: ReportData) -> str:
    rates = _per_night(data, "ood_rate")
    events = {e.id: e.status for e in data.events}
    rows, classes = [], []
    for night, batch in data.nights.iterrows():
        event = (
            f"#{int(batch['event'])} {events.get(int(batch['event']), '')}"
            if pd.notna(batch["event"])
            else ""
        )
        verdict = (
            _badge(batch["verdict"]) if batch["status"] != "failed" else f"failed: {batch['error']}"
        )
        rows.append(
            [
                night.isoformat(),
                int(batch["n_rows"]) if pd.notna(batch["n_rows"]) else None,
                *[_Percent(r) if pd.notna(r) else None for r in rates.loc[night]],
                verdict,
                event,
            ]
        )
        classes.append("failed" if batch["status"] == "failed" else batch["verdict"] or "")
    headers = ["night", "rows", *[f"OOD {d}" for d in rates.columns], "verdict", "event"]
    return _table(headers, rows, classes)


def _columns_section(data: ReportData, figures: dict[str, bytes]) -> str:
    top = top_columns(data.column_tests, data.night)
    if top.empty:
        return "<p>No per-column tests were stored for this night.</p>"
    table = _table(
        [
            "column",
            "test",
            "BH-adjusted p",
            "raw p",
            "effect size",
            "drifted (FDR)",
            "nights flagged in range",
        ],
        top[
            [
                "column",
                "test",
                "p_value",
                "raw_p_value",
                "effect_size",
                "significant",
                "nights_flagged",
            ]
        ].itertuples(index=False),
    )
    image = _figure_or_note(figures, "columns", "top drifted columns")
    return (
        f'<p class="muted">Per-column tests on {data.night} (KS for numbers, chi-square for categories; '
        "p-values Benjamini–Hochberg adjusted across columns; effect size: Wasserstein distance in "
        "reference standard deviations, or total variation). Columns that drifted tonight come "
        "first, those flagged on few nights of the range before those flagged on most (a standing "
        "difference, not tonight's shift). Histograms use the stored samples, not the raw rows.</p>"
        + table
        + image
    )


def _event_section(event: EventView) -> str:
    facts = _table(
        ["status", "shift type", "first seen", "confirmed on", "last seen", "nights"],
        [
            [
                _badge(event.status),
                event.shift_type or "–",
                event.first_seen.isoformat(),
                event.confirmed_on.isoformat() if event.confirmed_on else "–",
                event.last_seen.isoformat(),
                event.n_nights,
            ]
        ],
    )
    tests = (
        _table(
            ["test", "subject", "p-value", "effect size"],
            event.decisive_tests.itertuples(index=False),
        )
        if not event.decisive_tests.empty
        else "<p>No decisive test stored (CUSUM or r-of-w rule only).</p>"
    )
    reasons = "".join(f"<li>{_e(r)}</li>" for r in event.reasons)
    resolution = f"<p>Resolution: {_e(event.resolution)}</p>" if event.resolution else ""
    return (
        f'<div class="event"><h3>Event #{event.id}</h3>{facts}'
        f"<p>Decisive tests on {event.decisive_night} (Bonferroni across the act family):</p>{tests}"
        f"<p>Gate reasons:</p><ul>{reasons}</ul>{resolution}</div>"
    )


def _adaptations_section(adaptations: list[Adaptation]) -> str:
    if not adaptations:
        return "<p>No adaptations in this range.</p>"
    parts = []
    for a in adaptations:
        metrics = sorted(set(a.metrics_before) | set(a.metrics_after))
        rows = [
            [
                m,
                a.metrics_before.get(m),
                a.metrics_after.get(m),
                _change(a.metrics_before.get(m), a.metrics_after.get(m)),
            ]
            for m in metrics
        ]
        parts.append(
            f"<h3>Adaptation #{a.id} · {_e(a.method)} · {_badge(a.status)}</h3>"
            f'<p class="muted">event {_e(a.event_id or "–")} · started {a.started_at:%Y-%m-%d %H:%M}'
            f"{' · ' + _e(a.reason) if a.reason else ''}</p>"
            + (
                _table(["metric", "before", "after", "change"], rows)
                if rows
                else "<p>No metrics stored.</p>"
            )
        )
    return "".join(parts)


def _change(before: Any, after: Any) -> float | None:
    numbers = (int, float)
    if isinstance(before, numbers) and isinstance(after, numbers):
        return after - before
    return None


def build_html(data: ReportData, figures: dict[str, bytes]) -> str:
    """The whole report as one HTML string (no external assets, no scripts)."""
    night = data.night.isoformat()
    events = (
        "".join(_event_section(e) for e in data.events) or "<p>No drift events in this range.</p>"
    )
    sections = [
        _header(data),
        "<h2>OOD rate per detector</h2>"
        "<p class=\"muted\">Share of each night's rows above the detector's calibrated threshold; dashed: "
        "the rate expected on in-distribution rows (≈ 1 − tpr). Shaded: warning and confirmed nights.</p>"
        + _image(figures["ood_rate"], "OOD rate per night"),
        "<h2>CUSUM per detector</h2>"
        '<p class="muted">Binomial CUSUM of the nightly flag count as stored in the gate state; on a '
        "confirmation night the value that crossed the alarm level, from the event's evidence. "
        "Dashed: the alarm level stored with a confirmation, carried to the nights around it "
        "(the level depends on a night's row count).</p>"
        + _image(figures["cusum"], "CUSUM per night"),
        f"<h2>Score histograms: reference vs {night}</h2>"
        f'<p class="muted">Calibration scores (held-out reference rows) vs every row of {night}'
        f"{' (the most shifted night in range)' if data.night == most_shifted_night(data.detector_nights) else ''}; "
        "dashed: the threshold.</p>" + _figure_or_note(figures, "scores", "score histograms"),
        f"<h2>Top drifted input columns on {night}</h2>" + _columns_section(data, figures),
        "<h2>Drift events</h2>" + events,
        "<h2>Adaptations</h2>" + _adaptations_section(data.adaptations),
        "<h2>Verdict timeline</h2>" + _timeline(data),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>driftwatch report: {_e(data.monitor)} {data.start} to {data.end}</title>"
        f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>"
    )


# -- entry points -----------------------------------------------------------------------------


def render_report(
    settings: Settings,
    monitor: MonitorConfig,
    start: date | None,
    end: date | None,
    night: date | None = None,
    *,
    out: Path,
) -> Path:
    """Write the monitor's report for ``start``..``end`` to ``out`` as one self-contained HTML file.

    Parameters
    ----------
    settings
        where the event store and artifacts are.
    monitor
        the monitor to report on.
    start, end
        first and last night (inclusive); None: the first / last stored night.
    night
        the night the histograms show; None: the most shifted night in range.
    out
        the HTML file to write (its folder is created).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ReportError
        nothing to report (unknown monitor, no nights in range, bad ``night``).
    """
    data = load_report_data(settings, monitor, start, end, night)
    document = build_html(data, render_figures(settings, monitor, data))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out


def render_plots(
    settings: Settings,
    monitor: MonitorConfig,
    start: date | None,
    end: date | None,
    night: date | None = None,
    *,
    out_dir: Path,
) -> list[Path]:
    """Write the report's figures as PNG files ``<monitor>-<figure>.png`` into ``out_dir``.

    The same figures as :func:`render_report` (for e-mail and the README);
    parameters as there. Returns the files written.
    """
    data = load_report_data(settings, monitor, start, end, night)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in render_figures(settings, monitor, data).items():
        path = out_dir / f"{monitor.name}-{name}.png"
        path.write_bytes(png)
        written.append(path)
    return written
