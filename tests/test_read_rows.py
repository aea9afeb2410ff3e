"""Shard reads: any row range of several multi-row-group files, resumed when read in order."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift import sources


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
    return files, pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("shard_rows", [1, 299, 700, 5000])
def test_shards_in_order_equal_the_whole(night, shard_rows):
    files, whole = night
    shards = sources.plan_shards(len(whole), shard_rows)
    if shard_rows == 1:
        shards = shards[990:1010]  # across a file boundary, one row at a time
    for shard in shards:
        got = sources.read_rows(files, ["row", "x"], shard["start"], shard["stop"])
        pd.testing.assert_frame_equal(got, whole.iloc[shard["start"] : shard["stop"]].reset_index(drop=True))


def test_consecutive_shards_resume_one_reader(night):
    files, whole = night
    sources.read_rows(files, ["row", "x"], 0, 700)
    cursor = sources._cursor
    sources.read_rows(files, ["row", "x"], 700, 1400)
    assert sources._cursor is cursor and cursor.position == 1400


def test_out_of_order_and_repeated_reads(night):
    files, whole = night
    for start, stop in [(2000, 2600), (100, 400), (100, 400), (2999, 3000), (0, None)]:
        got = sources.read_rows(files, ["x", "row"], start, stop)
        pd.testing.assert_frame_equal(got, whole[["x", "row"]].iloc[start:stop].reset_index(drop=True))


def test_a_rewritten_file_is_read_again(night):
    files, whole = night
    sources.read_rows(files, ["row"], 0, 10)
    pq.write_table(pa.table({"row": np.arange(1000) + 10**6}), files[0], row_group_size=300)
    assert sources.read_rows(files, ["row"], 10, 12)["row"].tolist() == [10**6 + 10, 10**6 + 11]


def test_the_reader_is_let_go_at_the_end(night):
    files, whole = night
    sources.read_rows(files, ["row"], 0, 2000)
    assert sources._cursor is not None
    sources.read_rows(files, ["row"], 2000, len(whole))
    assert sources._cursor is None  # no open files or buffers held into the rest of the night
