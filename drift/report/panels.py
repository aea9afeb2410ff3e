"""Histogram inputs for the chosen night, read from artifacts with bounded memory.

The night's per-row *score* column is read shard by shard into fixed bins; the
input columns come from the per-night samples the pipeline already keeps
(``SAMPLE_ROWS``) and the version's reference sample. Report size does not
grow with the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from drift.config import MonitorConfig, Settings
from drift.report.data import ReportData, top_columns

#: per-column histograms drawn for the chosen night (the table lists more)
TOP_COLUMN_PLOTS = 4
HISTOGRAM_BINS = 40


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


def night_panels(
    settings: Settings, monitor: MonitorConfig, data: ReportData
) -> tuple[list[HistogramPanel], list[HistogramPanel]]:
    """Score panels (per detector) and column panels (top drifted columns) for the chosen night.

    Artifacts may be gone (retention, a version deleted): a missing file leaves its panel out
    rather than failing the report; the HTML says so.
    """
    from drift import pipeline

    version_path = data.nights.at[data.night, "version_path"]
    if version_path is None or not Path(version_path).is_dir():
        return [], []
    version = Path(version_path)
    folder = pipeline.scores_dir(settings, monitor, data.night)
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
            categorical=row.categorical,
            label=f"BH p={row.p_value:.2g}",
        )
        for row in top.itertuples()
    ]
    return scores, columns
