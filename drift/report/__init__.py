"""The monitor report: one self-contained HTML file per monitor and date range, and its plots.

What a user sees (docs/architecture.md §1, issue 6): per detector, the nightly OOD rate
against its calibrated expected rate and the CUSUM statistic against its alarm
level, with warning and confirmed nights shaded; the accuracy per night
(estimated and realized) against the reference accuracy; score histograms of the
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

Modules: :mod:`~drift.report.data` (event-store queries into :class:`ReportData`),
:mod:`~drift.report.panels` (histogram inputs from artifacts), :mod:`~drift.report.figures`
(matplotlib), :mod:`~drift.report.html` (the page). The entry point is :func:`build_report`:
it reads the data once and draws each figure once, for both the HTML file and the PNG files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from drift.config import MonitorConfig, Settings
from drift.report.data import ReportData, ReportError, load_report_data
from drift.report.figures import draw_figures
from drift.report.html import build_html

__all__ = ["MAX_DEMO_REPORT_BYTES", "Report", "ReportData", "ReportError", "build_report"]

#: the bound the tests hold the demo's report to (24 nights, 2 detectors, 64 columns)
MAX_DEMO_REPORT_BYTES = 2_000_000


@dataclass(frozen=True)
class Report:
    """A built report: its data, each figure as PNG bytes, and the HTML that embeds them."""

    data: ReportData
    #: PNG bytes by figure name (ood_rate, cusum, performance, scores, columns), in drawing order
    figures: dict[str, bytes]
    html: str

    def write_html(self, out: Path) -> Path:
        """Write the self-contained HTML file to ``out`` (its folder is created); returns ``out``."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html, encoding="utf-8")
        return out

    def write_pngs(self, out_dir: Path) -> list[Path]:
        """Write the figures as ``<monitor>-<figure>.png`` into ``out_dir`` (for e-mail and the
        README); returns the files written, in drawing order."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, png in self.figures.items():
            path = out_dir / f"{self.data.monitor}-{name}.png"
            path.write_bytes(png)
            written.append(path)
        return written


def build_report(
    settings: Settings,
    monitor: MonitorConfig,
    start: date | None = None,
    end: date | None = None,
    night: date | None = None,
) -> Report:
    """Build the monitor's report for ``start``..``end``: data read once, each figure drawn once.

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

    Returns
    -------
    Report
        write it with :meth:`Report.write_html` and :meth:`Report.write_pngs`.

    Raises
    ------
    ReportError
        nothing to report (unknown monitor, no nights in range, bad ``night``).
    """
    data = load_report_data(settings, monitor, start, end, night)
    figures = draw_figures(settings, monitor, data)
    return Report(data=data, figures=figures, html=build_html(data, figures))
