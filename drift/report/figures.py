"""The report's figures, drawn with matplotlib (Agg) into PNG bytes: one function per figure.

:func:`draw_figures` draws every figure once; the HTML embeds the bytes and
:meth:`drift.report.Report.write_pngs` writes the same bytes as files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd

from drift.config import MonitorConfig, Settings
from drift.report.data import ReportData
from drift.report.panels import HistogramPanel, night_panels

DPI = 90
VERDICT_COLOURS = {"warn": "#f2c14e", "confirm": "#e4572e"}


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
    emphasise_levels: bool = False,
) -> bytes:
    """One line per detector over the nights, its reference level dashed in the same colour,
    warning/confirmed nights shaded and events labelled at the top.

    ``emphasise_levels``: draw the levels above the values with a dark edge and give their
    value in the legend, for a level that matters more than the values near it (a CUSUM's
    alarm level at or near 0 would otherwise hide under the values' line of the same
    colour). ``symlog``: symmetric log scale, linear below 1, with the axis starting below 0
    so that a line at 0 is not on the spine.
    """
    from matplotlib.dates import DateFormatter
    from matplotlib.patches import Patch
    from matplotlib.patheffects import Normal, Stroke

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
            label = f"{detector}: {level_label}"
            style: dict[str, Any] = {"ls": "--", "lw": 1.2}
            if emphasise_levels:
                label += f" {_span(levels[detector])}"
                style = {
                    "ls": (0, (5, 2)),
                    "lw": 1.8,
                    "zorder": 3,
                    "path_effects": [Stroke(linewidth=3.2, foreground="#222"), Normal()],
                }
            ax.plot(
                levels.index,
                levels[detector],
                color=colour,
                drawstyle="steps-mid",
                label=label,
                **style,
            )
    if symlog:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=-0.5)
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


def _span(level: pd.Series) -> str:
    """A level's value for the legend: one number, or its range when it changes over the nights."""
    low, high = level.min(), level.max()
    return f"{low:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g}"


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


def _event_marks(data: ReportData) -> dict[date, str]:
    return {
        (e.confirmed_on or e.first_seen): f"#{e.id} {e.shift_type or ''}".strip()
        for e in data.events
        if data.start <= (e.confirmed_on or e.first_seen) <= data.end
    }


def ood_rate_figure(data: ReportData) -> bytes:
    """Each detector's nightly OOD rate against its calibrated expected rate."""
    return series_figure(
        data.per_night("ood_rate"),
        data.per_night("expected_rate"),
        data.nights["verdict"],
        _event_marks(data),
        title="OOD rate per night",
        ylabel="share of rows flagged",
        level_label="expected (calibrated)",
    )


def cusum_figure(data: ReportData) -> bytes:
    """Each detector's CUSUM against its alarm level, the level drawn to stay visible at 0."""
    return series_figure(
        data.per_night("cusum"),
        data.per_night("alarm_level").ffill().bfill(),
        data.nights["verdict"],
        _event_marks(data),
        title="CUSUM of the nightly flag count (reset to 0 after a confirm)",
        ylabel="CUSUM statistic (symlog)",
        level_label="alarm level",
        symlog=True,
        emphasise_levels=True,
    )


#: how each method's accuracy is drawn: label, colour
ACCURACY_METHODS = {"cbpe": ("estimated: CBPE", "C0"), "atc": ("estimated: ATC", "C1")}


def performance_figure(data: ReportData, max_drop: float) -> bytes:
    """Estimated accuracy per night (CBPE, ATC, 95% bands) and realized accuracy (Wilson 95%
    interval of the labelled rows) against the reference accuracy and the gate's allowed drop."""
    from matplotlib.dates import DateFormatter

    table = data.performance.assign(night=pd.to_datetime(data.performance["night"]))
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(10, 3.4))
    _shade_verdicts(ax, data.nights["verdict"].set_axis(pd.to_datetime(data.nights.index)))
    for method, (label, colour) in ACCURACY_METHODS.items():
        rows = table[table["method"] == method].sort_values("night")
        if not rows.empty:
            ax.plot(rows["night"], rows["accuracy"], marker="o", ms=3.5, color=colour, label=label)
            ax.fill_between(rows["night"], rows["low"], rows["high"], color=colour, alpha=0.15, lw=0)
    realized = table[table["method"] == "realized"].sort_values("night")
    if not realized.empty:
        ax.errorbar(
            realized["night"], realized["accuracy"],
            yerr=[realized["accuracy"] - realized["low"], realized["high"] - realized["accuracy"]],
            fmt="s", ms=4, color="#222", capsize=2, label="realized (labelled rows, 95% CI)",
        )
    reference = table.dropna(subset=["reference_accuracy"]).groupby("night")["reference_accuracy"].last()
    if not reference.empty:
        ax.plot(reference.index, reference, color="#555", ls="--", lw=1.2, drawstyle="steps-mid",
                label="reference accuracy")
        ax.plot(reference.index, reference - max_drop, color="#a02c10", ls=":", lw=1.2,
                drawstyle="steps-mid", label=f"reference - max_accuracy_drop ({max_drop:g})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Accuracy per night: estimated without labels, realized from feedback", fontsize=11)
    ax.set_ylabel("accuracy")
    ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
    ax.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def draw_figures(settings: Settings, monitor: MonitorConfig, data: ReportData) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by a short name (``ood_rate``, ``cusum``,
    ``performance``, ``scores``, ``columns``, in that order); a histogram figure whose
    artifacts are gone, or the accuracy figure of a monitor with no estimates or labels, is
    left out."""
    figures = {"ood_rate": ood_rate_figure(data), "cusum": cusum_figure(data)}
    if not data.performance.empty:
        figures["performance"] = performance_figure(data, monitor.gate.max_accuracy_drop)
    score_panels, column_panels = night_panels(settings, monitor, data)
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
