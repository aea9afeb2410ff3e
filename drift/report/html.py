"""The report as one self-contained HTML string: inline CSS, figures as base64 PNG, no scripts.

Every value from the event store is escaped here (:func:`_e`); only markup built
in this module from escaped parts (:class:`_Markup`) goes into a page unescaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.report.data import ReportData, top_columns
from drift.report.events import AdaptationView, EventView

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;font-size:14px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin-bottom:4px}.muted{color:#666}p.warning{color:#8a5a00}.summary span{margin-right:18px}
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
    warned = data.nights["calibration_warning"].dropna()
    calibration = (
        f'<p class="warning">Calibration, {warned.index[-1]}: {_e(warned.iloc[-1])}</p>'
        if len(warned)
        else ""
    )
    return (
        f"<h1>driftwatch report: {_e(data.monitor)}</h1>"
        f'<p class="muted">nights {data.start} to {data.end} ({len(data.nights)} nights) · '
        f"detectors {_e(', '.join(data.detectors))} · model versions {_e(', '.join(versions))} · "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"
        f'<p class="summary">{counts}<span>{_plural(failed, "failed night")}</span><span>{_plural(len(data.events), "event")}</span></p>'
        f"{calibration}"
    )


def _timeline(data: ReportData) -> str:
    rates = data.per_night("ood_rate")
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
        "p-values Benjamini–Hochberg adjusted across columns; effect size: Wasserstein distance beyond "
        "chance, in reference standard deviations, or total variation). Columns that drifted tonight come "
        "first, those flagged on few nights of the range before those flagged on most (a standing "
        "difference, not tonight's shift). Histograms use the stored samples, not the raw rows.</p>"
        + table
        + image
    )


def _event_section(event: EventView) -> str:
    facts = _table(
        ["status", "kind", "shift type", "first seen", "confirmed on", "last seen", "nights"],
        [
            [
                _badge(event.status),
                event.kind,
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
    actions = "".join(f'<p class="person">{_e(a[:1].upper() + a[1:])}.</p>' for a in event.actions)
    return (
        f'<div class="event"><h3>Event #{event.id}</h3>{facts}{actions}'
        f"<p>Decisive tests on {event.decisive_night} (Bonferroni across the act family):</p>{tests}"
        f"<p>Gate reasons:</p><ul>{reasons}</ul>{resolution}</div>"
    )


def _false_alarm_line(data: ReportData) -> str:
    in_range = sum(1 for e in data.events if any(a.startswith("closed as false-alarm") for a in e.actions))
    return (
        f'<p class="muted">False alarms ({_e(data.monitor)}): {in_range} of {_plural(len(data.events), "event")} '
        f"in range, {data.false_alarms_total} of {data.events_total} ever, closed as false-alarm by a person.</p>"
    )


def _adaptations_section(adaptations: list[AdaptationView]) -> str:
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
        "Dashed, dark-edged: the alarm level stored with a confirmation (its value in the legend), "
        "carried to the nights around it "
        "(the level depends on a night's row count).</p>"
        + _image(figures["cusum"], "CUSUM per night"),
        "<h2>Accuracy per night</h2>"
        '<p class="muted">Estimated from the model\'s confidence without labels (CBPE and ATC, '
        "calibrated on labelled reference rows; shaded: 95% bands) and realized on the rows whose "
        "feedback labels came back (95% Wilson interval), against the reference accuracy; dotted: "
        "the drop at which the gate's accuracy_drop test may act.</p>"
        + (
            _image(figures["performance"], "Accuracy per night")
            if "performance" in figures
            else "<p>No accuracy per night: the model version has no performance estimators "
            "(no labelled calibration rows) and no feedback labels arrived.</p>"
        ),
        f"<h2>Score histograms: reference vs {night}</h2>"
        f'<p class="muted">Calibration scores (held-out reference rows) vs every row of {night}'
        f"{' (the most shifted night in range)' if data.night == data.most_shifted else ''}; "
        "dashed: the threshold.</p>" + _figure_or_note(figures, "scores", "score histograms"),
        f"<h2>Top drifted input columns on {night}</h2>" + _columns_section(data, figures),
        "<h2>Drift events</h2>" + _false_alarm_line(data) + events,
        "<h2>Adaptations</h2>" + _adaptations_section(data.adaptations),
        "<h2>Verdict timeline</h2>" + _timeline(data),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>driftwatch report: {_e(data.monitor)} {data.start} to {data.end}</title>"
        f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>"
    )
