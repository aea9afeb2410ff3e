"""NannyML's peers for ``benchmarks/actionable.py``, run in the peer environment.

``python actionable_peers.py DIR ROWS``: reads ``DIR/reference.parquet`` and
``DIR/analysis.parquet`` (the nights' rows in order, ``ROWS`` a night), writes
``DIR/alarms.json``: per night, whether NannyML's data reconstruction error (DRE)
and its univariate drift (any column alerting, default Jensen-Shannon) alarmed,
with default thresholds fitted on the reference's chunks of the night's size.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd


def main() -> None:
    import nannyml as nml

    warnings.filterwarnings("ignore")
    folder, rows = Path(sys.argv[1]), int(sys.argv[2])
    reference = pd.read_parquet(folder / "reference.parquet")
    analysis = pd.read_parquet(folder / "analysis.parquet")
    columns = list(reference.columns)

    dre = nml.DataReconstructionDriftCalculator(column_names=columns, chunk_size=rows)
    dre_frame = dre.fit(reference).calculate(analysis).filter(period="analysis").to_df()
    dre_alerts = dre_frame[("reconstruction_error", "alert")].astype(bool).tolist()

    uni = nml.UnivariateDriftCalculator(column_names=columns, chunk_size=rows)
    uni_frame = uni.fit(reference).calculate(analysis).filter(period="analysis").to_df()
    alert_columns = [c for c in uni_frame.columns if c[-1] == "alert"]
    uni_alerts = uni_frame[alert_columns].astype(bool).any(axis=1).tolist()

    (folder / "alarms.json").write_text(json.dumps({"dre": dre_alerts, "univariate": uni_alerts}))


if __name__ == "__main__":
    main()
