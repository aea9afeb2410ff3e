"""The bad-input corpus: nights that must fail in one line naming the problem.

Each :class:`BadBatch` writes one night's folder for the tiny 4-input monitor of
``tests/test_hostile_input.py`` (columns ``x0``-``x3``, parquet, ``ds={date}``)
and says what its one-line error must contain: the file, column, row or key.
``tests/test_bad_batches.py`` feeds every case through one `drift backfill`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tests.test_hostile_input import COLUMNS

ROWS = 60


def clean(n: int = ROWS, seed: int = 1) -> pd.DataFrame:
    """A night like the reference: standard normal float32 inputs."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(COLUMNS))).astype(np.float32), columns=COLUMNS)


@dataclass(frozen=True)
class BadBatch:
    name: str
    write: Callable[[Path], None]
    #: what the one error line must contain
    needles: tuple[str, ...]


def _parts(*frames: pd.DataFrame) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        for i, frame in enumerate(frames):
            frame.to_parquet(folder / f"part-{i}.parquet")

    return write


def _with(column: str, row: int, value: object, dtype: str | None = None, part: int = 0) -> Callable[[Path], None]:
    """A clean night of two parts with ``value`` at ``row`` of ``column`` in part ``part``."""
    frames = [clean(seed=1), clean(seed=2)]
    frame = frames[part]
    if dtype is not None:
        frame[column] = frame[column].astype(dtype)
    frame.loc[row, column] = value
    return _parts(*frames)


def _table(columns: dict[str, pa.Array]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        base = {c: pa.array(clean()[c]) for c in COLUMNS}
        pq.write_table(pa.table({**base, **columns}), folder / "part-0.parquet")

    return write


def _raw(name: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        path = folder / name
        clean().to_parquet(path)
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)

    return write


def _directory(folder: Path) -> None:
    (folder / "x.parquet").mkdir()


def _drop(column: str, part: int = 0) -> Callable[[Path], None]:
    frames = [clean(seed=1), clean(seed=2)]
    frames[part] = frames[part].drop(columns=[column])
    return _parts(*frames)


def _text_as_parquet(folder: Path) -> None:
    clean().to_csv(folder / "part-0.parquet", index=False)


def _no_files(folder: Path) -> None:
    (folder / "README.txt").write_text("nothing landed tonight")


N = ROWS  # row numbers are the night's: a second part's continue the first's


CASES: list[BadBatch] = [
    # structure
    BadBatch("missing column", _drop("x1"), ("missing column 'x1'",)),
    BadBatch("missing column in second part", _drop("x3", part=1), ("part-1.parquet", "'x3'")),
    BadBatch("empty night", _parts(clean().iloc[:0]), ("the batch is empty",)),
    BadBatch("empty parts", _parts(clean().iloc[:0], clean().iloc[:0]), ("the batch is empty",)),
    BadBatch("no data files", _no_files, ("no",)),
    BadBatch("renamed column", _parts(clean().rename(columns={"x2": "X2"})), ("'x2'",)),
    # unreadable files
    BadBatch("zero-byte parquet", _raw("part-0.parquet", b""), ("part-0.parquet",)),
    BadBatch("truncated parquet", _raw("part-0.parquet", lambda b: b[: len(b) // 2]), ("part-0.parquet",)),
    BadBatch("footer only", _raw("part-0.parquet", lambda b: b[-64:]), ("part-0.parquet",)),
    BadBatch("garbage bytes", _raw("part-0.parquet", bytes(range(256)) * 8), ("part-0.parquet",)),
    BadBatch("csv renamed parquet", _text_as_parquet, ("part-0.parquet",)),
    BadBatch("directory named parquet", _directory, ("x.parquet",)),
    # nulls and NaN at different places
    BadBatch("nan first row", _with("x0", 0, np.nan), ("'x0'", "row 0")),
    BadBatch("nan middle row", _with("x2", 5, np.nan), ("'x2'", "row 5")),
    BadBatch("nan last row", _with("x3", ROWS - 1, np.nan), ("'x3'", f"row {ROWS - 1}")),
    BadBatch("nan in second part", _with("x1", 7, np.nan, part=1), ("part-1.parquet", "'x1'", f"row {N + 7}")),
    BadBatch("null float", _table({"x1": pa.array([None] + [0.5] * (ROWS - 1), pa.float32())}), ("'x1'", "row 0")),
    BadBatch("null integer", _table({"x2": pa.array([1] * 9 + [None] + [1] * (ROWS - 10), pa.int64())}), ("'x2'", "row 9")),
    BadBatch("all-null column", _table({"x0": pa.nulls(ROWS)}), ("'x0'", "row 0")),
    # values out of range
    BadBatch("inf", _with("x0", 3, np.inf), ("'x0'", "row 3")),
    BadBatch("minus inf", _with("x1", 4, -np.inf), ("'x1'", "row 4")),
    BadBatch("float64 beyond float32", _with("x2", 2, 1e39, dtype="float64"), ("'x2'", "row 2", "beyond float32")),
    BadBatch("negative beyond float32", _with("x3", 8, -5e38, dtype="float64"), ("'x3'", "row 8")),
    BadBatch("integer above 2^53", _table({"x1": pa.array([2**60] + [1] * (ROWS - 1), pa.int64())}), ("'x1'", "row 0", "2^53")),
    BadBatch("uint64 near 2^64", _table({"x0": pa.array([1] * 3 + [2**63 + 5] + [1] * (ROWS - 4), pa.uint64())}), ("'x0'", "row 3")),
    BadBatch("1e38 in float32", _with("x2", 6, 1e38), ("'x2'", "row 6", "max_abs_value")),
    BadBatch("-3e38 in float32, second part", _with("x0", 1, -3e38, part=1), ("'x0'", f"row {N + 1}", "max_abs_value")),
    # wrong types
    BadBatch("string column", _table({"x3": pa.array(["1.0"] * ROWS)}), ("'x3'", "string")),
    BadBatch("bool column", _table({"x0": pa.array([True, False] * (ROWS // 2))}), ("'x0'", "bool")),
    BadBatch("timestamp column", _table({"x1": pa.array(pd.date_range("2026-01-01", periods=ROWS))}), ("'x1'", "timestamp")),
    BadBatch("date column", _table({"x2": pa.array([pd.Timestamp("2026-01-01").date()] * ROWS)}), ("'x2'", "date")),
    BadBatch("binary column", _table({"x0": pa.array([b"\x00"] * ROWS)}), ("'x0'", "binary")),
    BadBatch("list column", _table({"x1": pa.array([[1.0, 2.0]] * ROWS)}), ("'x1'", "list")),
    BadBatch("struct column", _table({"x2": pa.array([{"a": 1.0}] * ROWS)}), ("'x2'", "struct")),
    BadBatch("dictionary column", _table({"x3": pa.array(["a", "b"] * (ROWS // 2)).dictionary_encode()}), ("'x3'", "dictionary")),
    BadBatch("string in second part", _parts(clean(), clean().astype({"x1": str})), ("part-1.parquet", "'x1'", "string")),
    BadBatch("duration column", _table({"x0": pa.array([1] * ROWS, pa.duration("s"))}), ("'x0'", "duration")),
    BadBatch("large string column", _table({"x1": pa.array(["0"] * ROWS, pa.large_string())}), ("'x1'", "string")),
    BadBatch("map column", _table({"x2": pa.array([[("k", 1.0)]] * ROWS, pa.map_(pa.string(), pa.float64()))}), ("'x2'", "map")),
    BadBatch("nan after a good part", _with("x3", 11, np.nan, part=1), ("part-1.parquet", "'x3'", f"row {N + 11}")),
]


class OverflowingNet(torch.nn.Module):
    """Finite inputs, overflowing outputs: features and logits 1e30 times the input."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 1e30, x[:, :3] * 1e30


def overflowing_model() -> torch.nn.Module:
    """The ``entrypoint`` of :class:`OverflowingNet`."""
    return OverflowingNet()
