"""Shard reads: any row range of several multi-row-group files, reading only what overlaps."""

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift import sources
from drift.config import SourceSpec

NIGHT = date(2026, 11, 1)


@pytest.fixture()
def night(tmp_path):
    """Three files of 1000, 250 and 1750 rows, written in row groups of 300 rows."""
    frames, files, first = [], [], 0
    for i, n in enumerate((1000, 250, 1750)):
        frame = pd.DataFrame({"row": np.arange(first, first + n), "x": np.arange(n) * 0.5 + i})
        path = tmp_path / f"part-{i}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=300)
        frames.append(frame)
        files.append(str(path))
        first += n
    source = SourceSpec(landing=tmp_path, input_columns=["x"], id_column="row")
    return source, files, pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("shard_rows", [1, 299, 700, 5000])
def test_shards_in_order_equal_the_whole(night, shard_rows):
    source, files, whole = night
    shards = sources.plan_shards(len(whole), shard_rows)
    if shard_rows == 1:
        shards = shards[990:1010]  # across a file boundary, one row at a time
    for shard in shards:
        got = sources.read_rows(source, NIGHT, files, ["row", "x"], shard["start"], shard["stop"])
        pd.testing.assert_frame_equal(got, whole.iloc[shard["start"] : shard["stop"]].reset_index(drop=True))


def test_out_of_order_and_repeated_reads(night):
    source, files, whole = night
    for start, stop in [(2000, 2600), (100, 400), (100, 400), (2999, 3000), (0, None)]:
        got = sources.read_rows(source, NIGHT, files, ["x", "row"], start, stop)
        pd.testing.assert_frame_equal(got, whole[["x", "row"]].iloc[start:stop].reset_index(drop=True))
