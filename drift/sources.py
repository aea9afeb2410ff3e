"""Reading production batches and the reference.

A night's batch is every parquet file under ``<landing>/ds=YYYY-MM-DD/``.
:func:`inspect_batch` validates it before any work is planned: missing
columns, non-numeric columns, nulls/NaN/inf and empty batches raise
:class:`~drift.batch.InvalidBatchError` naming the column (and file).
Shards are row ranges; :func:`read_rows` streams record batches so that a
shard task holds only its own rows in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from drift.batch import InvalidBatchError


def batch_folder(landing: Path, batch_date: date) -> Path:
    return Path(landing) / f"ds={batch_date.isoformat()}"


@dataclass(frozen=True)
class BatchInfo:
    files: list[str]
    n_rows: int


def inspect_batch(landing: Path, batch_date: date, columns: list[str]) -> BatchInfo:
    """Find and validate the night's files; raises InvalidBatchError on any problem."""
    folder = batch_folder(landing, batch_date)
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    if not files:
        raise InvalidBatchError(f"no parquet files in {folder}")
    n_rows = 0
    for file in files:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
        for column in columns:
            if column not in schema.names:
                raise InvalidBatchError(f"{Path(file).name}: missing column '{column}'")
            dtype = schema.field(column).type
            if not (pa.types.is_floating(dtype) or pa.types.is_integer(dtype)):
                raise InvalidBatchError(
                    f"{Path(file).name}: column '{column}' has type {dtype}, expected a number"
                )
        offset = n_rows
        for record_batch in parquet.iter_batches(columns=columns, batch_size=65_536):
            _check_finite(record_batch, Path(file).name, offset)
            offset += record_batch.num_rows
        n_rows = offset
    if n_rows == 0:
        raise InvalidBatchError(f"{folder}: the batch is empty (0 rows)")
    return BatchInfo(files=files, n_rows=n_rows)


def _check_finite(record_batch: pa.RecordBatch, file_name: str, row_offset: int) -> None:
    for name, column in zip(record_batch.schema.names, record_batch.columns, strict=True):
        bad = pc.is_null(column, nan_is_null=True)
        if pa.types.is_floating(column.type):
            bad = pc.or_kleene(bad, pc.is_inf(column))  # is_inf(null) is null: Kleene keeps True
        if pc.any(bad).as_py():
            row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0]) + row_offset
            value = column[row - row_offset].as_py()
            value = "null/NaN" if value is None else value
            raise InvalidBatchError(f"{file_name}: column '{name}' has {value} at row {row}")


def plan_shards(n_rows: int, shard_rows: int) -> list[dict[str, int]]:
    """Row ranges of at most ``shard_rows`` rows covering ``n_rows``."""
    return [
        {"index": i, "start": start, "stop": min(start + shard_rows, n_rows)}
        for i, start in enumerate(range(0, n_rows, shard_rows))
    ]


def read_rows(files: list[str], columns: list[str], start: int = 0, stop: int | None = None) -> pd.DataFrame:
    """Rows ``[start, stop)`` of the concatenated files, reading only what overlaps.

    Row groups wholly before ``start`` are skipped unread (parquet metadata). Within a
    row group the rows before ``start`` must be decoded, so each process keeps one
    :class:`_Cursor`: consecutive shards read by one process (``drift run``, a
    backfill) resume where the last one stopped and decode the night once, not
    once per shard.
    """
    key = (tuple(files), tuple(columns), tuple(_stamp(f) for f in files))
    with _CURSOR_LOCK:
        global _cursor
        if _cursor is None or _cursor.key != key or start < _cursor.position:
            _cursor = _Cursor(key, files, columns, start)
        pieces = _cursor.read(start, stop)
        if _cursor.exhausted:
            _cursor = None  # nothing left to resume: let go of the files and buffers
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pa.Table.from_batches(pieces).to_pandas()


#: column chunks are read through a buffer this size (pre-buffering off), not loaded whole
READ_BUFFER_BYTES = 1 << 20


def _stamp(file: str) -> tuple[int, int]:
    stat = Path(file).stat()
    return stat.st_mtime_ns, stat.st_size


def _batches_from(files: list[str], columns: list[str], start: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(first row, record batch)`` of the files, from the row group holding ``start`` on."""
    offset = 0
    for file in files:
        # read a column chunk page by page instead of loading (pre-buffering) it whole
        parquet = pq.ParquetFile(file, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if offset + rows <= start:
                offset += rows
                continue
            for batch in parquet.iter_batches(batch_size=65_536, row_groups=[group], columns=columns):
                yield offset, batch
                offset += batch.num_rows


class _Cursor:
    """A reader of the files that moves forward only; holds at most one record batch."""

    def __init__(self, key: tuple, files: list[str], columns: list[str], start: int) -> None:
        self.key = key
        self.position = start  # rows before this can no longer be served
        self._batches = _batches_from(files, columns, start)
        self._held: tuple[int, pa.RecordBatch] | None = None
        self.exhausted = False

    def read(self, start: int, stop: int | None) -> list[pa.RecordBatch]:
        pieces = []
        while True:
            if self._held is None:
                self._held = next(self._batches, None)
                if self._held is None:
                    self.exhausted = True
                    break
            lo, batch = self._held
            hi = lo + batch.num_rows
            if stop is not None and lo >= stop:
                break
            if hi > start:
                begin = max(start - lo, 0)
                end = batch.num_rows if stop is None else min(stop - lo, batch.num_rows)
                pieces.append(batch.slice(begin, end - begin))
            if stop is not None and hi > stop:
                break  # the next shard starts inside this batch: keep it
            self._held = None
        self.position = start if stop is None else stop
        return pieces


_CURSOR_LOCK = threading.Lock()
_cursor: _Cursor | None = None


def read_reference(path: Path, columns: list[str]) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    frame = pd.read_parquet(path, columns=columns)
    if frame.empty:
        raise InvalidBatchError(f"{path}: the reference is empty")
    return frame
