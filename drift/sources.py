"""Reading production batches and the reference.

A night's batch is every parquet file under ``<landing>/ds=YYYY-MM-DD/``.
:func:`inspect_batch` validates it before any work is planned: missing
columns, non-numeric columns, nulls/NaN/inf and empty batches raise
:class:`~drift.batch.InvalidBatchError` naming the column (and file).
Shards are row ranges; :func:`read_rows` streams record batches so that a
shard task holds only its own rows in memory.
"""

from __future__ import annotations

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
    """Rows ``[start, stop)`` of the concatenated files, reading only what overlaps."""
    pieces, offset = [], 0
    for file in files:
        for record_batch in pq.ParquetFile(file).iter_batches(columns=columns, batch_size=65_536):
            lo, hi = offset, offset + record_batch.num_rows
            offset = hi
            if stop is not None and lo >= stop:
                break
            if hi <= start:
                continue
            begin = max(start - lo, 0)
            end = record_batch.num_rows if stop is None else min(stop - lo, record_batch.num_rows)
            pieces.append(record_batch.slice(begin, end - begin))
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pa.Table.from_batches(pieces).to_pandas()


def read_reference(path: Path, columns: list[str]) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    try:
        frame = pd.read_parquet(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:  # a CSV or a truncated file under a .parquet name
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidBatchError(f"{path}: not a readable parquet file ({reason})") from None
    if frame.empty:
        raise InvalidBatchError(f"{path}: the reference is empty")
    return frame
