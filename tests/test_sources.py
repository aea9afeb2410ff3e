"""Reading a night: files at any URL, CSV, ids of any type, and one-line errors for bad input."""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift import sources
from drift.batch import InvalidBatchError
from drift.config import SourceSpec

NIGHT = date(2026, 3, 1)


def _source(landing, **kw) -> SourceSpec:
    return SourceSpec(landing=landing, input_columns=["a", "b"], id_column="row_key", **kw)


def _frame(n: int = 6, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "row_key": [f"k{start + i}" for i in range(n)],
            "a": rng.normal(size=n).astype(np.float32),
            "b": rng.normal(size=n),
        }
    )


def _night(tmp_path, partition: str = "ds={date}"):
    folder = tmp_path / "landing" / partition.format(date=NIGHT)
    folder.mkdir(parents=True)
    return folder


def test_partition_layout_and_every_file_under_it(tmp_path):
    folder = _night(tmp_path, "{date:%Y/%m/%d}")
    (folder / "hour=01").mkdir()
    _frame(4, 0).to_parquet(folder / "part-0.parquet")
    _frame(3, 4).to_parquet(folder / "hour=01" / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    source = _source(str(tmp_path / "landing"), partition="{date:%Y/%m/%d}")
    info = sources.inspect_batch(source, NIGHT, ["a", "b", "row_key"])
    assert info.n_rows == 7 and len(info.files) == 2
    rows = sources.read_rows(source, NIGHT, info.files, ["a", "b", "row_key"], 2, 6)
    # files in path order: hour=01/part-1 (k4..k6), then part-0 (k0..k3)
    assert rows["row_key"].tolist() == ["k6", "k0", "k1", "k2"]


def test_csv_night_reads_like_parquet(tmp_path):
    folder = _night(tmp_path)
    frame = _frame(5)
    frame.to_csv(folder / "part-0.csv", index=False)
    source = _source(str(tmp_path / "landing"), format="csv")
    info = sources.inspect_batch(source, NIGHT, ["a", "b", "row_key"])
    rows = sources.read_rows(source, NIGHT, info.files, ["a", "b", "row_key"])
    assert rows["row_key"].tolist() == frame["row_key"].tolist()
    np.testing.assert_allclose(rows["b"], frame["b"])


def test_float32_and_float64_parts_of_one_column_are_cast_and_joined(tmp_path):
    folder = _night(tmp_path)
    first, second = _frame(3, 0), _frame(3, 3)
    second["a"] = second["a"].astype(np.float64)
    first.to_parquet(folder / "part-0.parquet")
    second.to_parquet(folder / "part-1.parquet")
    source = _source(str(tmp_path / "landing"))
    info = sources.inspect_batch(source, NIGHT, ["a", "b", "row_key"])
    rows = sources.read_rows(source, NIGHT, info.files, ["a", "b", "row_key"])
    assert len(rows) == 6 and rows["a"].dtype == np.float64


@pytest.mark.parametrize("kind", ["string", "integer", "uuid"])
def test_ids_of_any_type_are_kept(tmp_path, kind):
    folder = _night(tmp_path)
    frame = _frame(4)
    ids = {
        "string": pa.array(["x", "y", "z", "w"]),
        "integer": pa.array([10, 11, 12, 13], pa.int64()),
        "uuid": pa.array([uuid.UUID(int=i).bytes for i in range(4)], pa.uuid()),
    }[kind]
    table = pa.Table.from_pandas(frame.drop(columns="row_key"), preserve_index=False).append_column(
        "row_key", ids
    )
    pq.write_table(table, folder / "part-0.parquet")
    source = _source(str(tmp_path / "landing"))
    info = sources.inspect_batch(source, NIGHT, ["a", "b", "row_key"])
    got = sources.read_rows(source, NIGHT, info.files, ["a", "b", "row_key"])["row_key"].tolist()
    expected = {
        "string": ["x", "y", "z", "w"],
        "integer": [10, 11, 12, 13],
        "uuid": [str(uuid.UUID(int=i)) for i in range(4)],
    }[kind]
    assert got == expected


def test_duplicate_ids_warn_with_the_count(tmp_path, caplog):
    folder = _night(tmp_path)
    frame = _frame(6)
    frame.loc[[1, 2, 4], "row_key"] = "k0"
    frame.to_parquet(folder / "part-0.parquet")
    info = sources.inspect_batch(_source(str(tmp_path / "landing")), NIGHT, ["a", "b", "row_key"])
    assert info.n_rows == 6 and info.n_duplicate_ids == 3
    assert "id column 'row_key' has 3 duplicate ids" in caplog.text


def _write(folder, case: str) -> None:
    """Write the night's bad file for ``case`` into ``folder``."""
    good = _frame(20)
    if case == "empty file":
        (folder / "part-0.parquet").write_bytes(b"")
    elif case == "truncated":
        good.to_parquet(folder / "part-0.parquet")
        data = (folder / "part-0.parquet").read_bytes()
        (folder / "part-0.parquet").write_bytes(data[: len(data) // 2])
    elif case == "csv renamed":
        good.to_csv(folder / "part-0.parquet", index=False)
    elif case == "directory":
        (folder / "x.parquet").mkdir()
    elif case == "ragged csv":
        text = good.to_csv(index=False).splitlines()
        text[5] += ",7"
        (folder / "part-0.csv").write_text("\n".join(text))
    else:
        frame = good.copy()
        if case == "id nulls":
            frame.loc[12, "row_key"] = None
        elif case == "beyond float32":
            frame.loc[3, "b"] = 1e39
        elif case == "huge uint64":
            frame["a"] = np.arange(20, dtype=np.uint64) + np.uint64(2**63)
        elif case == "string input":
            frame["b"] = frame["b"].astype(str)
        elif case == "missing input":
            frame = frame.drop(columns="b")
        frame.to_parquet(folder / "part-0.parquet")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty file", "part-0.parquet: not a readable parquet file"),
        ("truncated", "part-0.parquet: not a readable parquet file"),
        ("csv renamed", "part-0.parquet: not a readable parquet file"),
        ("directory", "x.parquet: is a directory, not a parquet file"),
        ("ragged csv", "part-0.csv: not a readable csv file"),
        ("id nulls", "id column 'row_key' has nulls at row 12"),
        ("beyond float32", "input column 'b' has 1e+39 at row 3 (beyond float32)"),
        ("huge uint64", "input column 'a' has 9223372036854775808 at row 0"),
        ("string input", "input column 'b' has type string, expected a number"),
        ("missing input", "part-0.parquet: missing column 'b'"),
        ("missing partition", "no parquet files in"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(tmp_path, case, message):
    landing = tmp_path / "landing"
    if case != "missing partition":
        _write(_night(tmp_path), case)
    source = _source(str(landing), format="csv" if case == "ragged csv" else "parquet")
    with pytest.raises(InvalidBatchError) as error:
        sources.inspect_batch(source, NIGHT, ["a", "b", "row_key"])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_reference_at_a_url_reads_like_the_local_file(tmp_path):
    frame = _frame(5)
    frame.to_parquet(tmp_path / "ref.parquet")
    got = sources.read_reference(f"file://{tmp_path}/ref.parquet", ["a", "b"])
    pd.testing.assert_frame_equal(got, frame[["a", "b"]])
    with pytest.raises(FileNotFoundError, match="reference file not found"):
        sources.read_reference(f"file://{tmp_path}/nope.parquet", ["a"])


def test_secrets_never_reach_the_message(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3tKEY")
    error = RuntimeError("denied for key s3cr3tKEY and password hunter2\nstack line")
    assert sources.one_line(error, ("hunter2",)) == "denied for key *** and password ***"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "either 'landing'"),
        (
            {"landing": "l", "sql": "SELECT 1 WHERE d = :batch_date", "url": "sqlite://"},
            "either 'landing'",
        ),
        ({"sql": "SELECT * FROM t WHERE d = :batch_date", "id_column": "k"}, "'sql' needs 'url'"),
        ({"sql": "SELECT * FROM t", "url": "sqlite://", "id_column": "k"}, ":batch_date"),
        (
            {"sql": "SELECT * FROM t WHERE d = :batch_date", "url": "sqlite://"},
            "'order_by' or 'id_column'",
        ),
        ({"landing": "l", "partition": "static"}, "must contain {date}"),
        ({"landing": "l", "partition": "{day}"}, "not a date pattern"),
    ],
)
def test_source_config_mistakes_name_the_key(keys, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        SourceSpec(input_columns=["a"], **keys)


def test_urls_stay_urls_and_secrets_stay_in_the_environment(tmp_path, monkeypatch):
    from drift.config import load_monitors

    monkeypatch.setenv("BUCKET", "prod-logs")
    config = tmp_path / "monitors.yaml"
    config.write_text(
        """
monitors:
  - name: from_s3
    model: {format: precomputed, feature_columns: [a], logit_columns: [a, b]}
    source: {landing: "s3://${BUCKET}/fraud", partition: "{date:%Y/%m/%d}", input_columns: [a]}
    reference: {path: "s3://${BUCKET}/reference.parquet"}
  - name: from_table
    model: {format: precomputed, feature_columns: [a], logit_columns: [a, b]}
    source:
      sql: "SELECT * FROM predictions WHERE day = :batch_date"
      url: "postgresql://drift:${PG_PASSWORD}@db/logs"
      id_column: request_id
      input_columns: [a]
    reference: {path: reference.parquet}
"""
    )
    from_s3, from_table = load_monitors(config)
    assert from_s3.source.landing == "s3://prod-logs/fraud"
    assert from_s3.reference.path == "s3://prod-logs/reference.parquet"
    assert sources.night_location(from_s3.source, NIGHT) == "s3://prod-logs/fraud/2026/03/01"
    assert from_table.reference.path == tmp_path / "reference.parquet"
    # the stored config keeps the reference to the secret, never its value
    assert (
        from_table.model_dump(mode="json")["source"]["url"]
        == "postgresql://drift:${PG_PASSWORD}@db/logs"
    )


def test_feedback_labels_match_uuid_ids_as_read_from_the_night(tmp_path):
    from drift.feedback import read_labels

    ids = [uuid.UUID(int=i) for i in range(3)]
    labels = pa.table(
        {
            "batch_date": ["2026-03-01"] * 3,
            "row_id": pa.array([u.bytes for u in ids], pa.uuid()),
            "label": pa.array([0, 1, 2], pa.int64()),
        }
    )
    pq.write_table(labels, tmp_path / "labels.parquet")
    folder = _night(tmp_path)
    night = pa.Table.from_pandas(_frame(3).drop(columns="row_key"), preserve_index=False)
    pq.write_table(
        night.append_column("row_key", labels.column("row_id")), folder / "part-0.parquet"
    )
    source = _source(str(tmp_path / "landing"))
    rows = sources.read_rows(
        source, NIGHT, sources.night_files(source, NIGHT), ["a", "b", "row_key"]
    )
    # the adaptation step joins on the id as text: the two sides must spell a UUID alike
    assert (
        rows["row_key"].astype(str).tolist()
        == read_labels(tmp_path / "labels.parquet")["row_id"].tolist()
    )


def test_a_malformed_database_url_fails_without_echoing_it():
    source = SourceSpec(
        sql="SELECT * FROM t WHERE d = :batch_date",
        url="nosuchdb+driver://u:hunter2@h/db",
        id_column="k",
        input_columns=["a"],
    )
    with pytest.raises(InvalidBatchError, match="source.url: not a usable database URL") as error:
        sources.inspect_batch(source, NIGHT, ["a", "k"])
    assert "hunter2" not in str(error.value)
