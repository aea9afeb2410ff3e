"""Reading production batches and the reference, from files or a table.

A night's batch is either every file under the night's partition of
``source.landing`` (a local folder or any fsspec URL: ``s3://``, ``gs://``,
``abfs://``, ``file://``; parquet or CSV), or the rows that ``source.sql``
returns for ``:batch_date`` (see :mod:`drift.sql_source`). Both are read as a
stream of record batches, so nothing holds the night twice.
:func:`inspect_batch` validates the night before any work is planned: a
missing, unreadable or non-numeric input column, nulls/NaN/inf, values beyond
float32 and an empty night raise :class:`~drift.batch.InvalidBatchError` in one
line naming the file (or query), the column's role and the row. Shards are row
ranges; :func:`read_rows` reads only what a shard needs.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from drift.batch import InvalidBatchError

if TYPE_CHECKING:
    from drift.config import SourceSpec
    from drift.pipeline.results import ShardRange

log = logging.getLogger(__name__)

#: rows per record batch read from a file or fetched from a cursor
CHUNK_ROWS = 65_536
#: parquet column chunks are read through a buffer this size (pre-buffering off), not whole
READ_BUFFER_BYTES = 1 << 20
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: integers beyond this lose digits as floats (9.2e18 and 9.2e18 + 1 look the same to a model)
EXACT_INT = 2**53
#: environment variables whose values never appear in a message
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY")


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def one_line(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The first line of an error, with every known secret blanked out.

    >>> one_line(OSError("login failed for password hunter2"), ("hunter2",))
    'login failed for password ***'
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for secret in (*secrets, *(os.environ.get(name, "") for name in SECRET_ENV)):
        if secret:
            text = text.replace(secret, "***")
    return text


def night_location(source: SourceSpec, batch_date: date) -> str:
    """``<landing>/<partition>`` for the night.

    >>> from drift.config import SourceSpec
    >>> spec = SourceSpec(landing="s3://logs/fraud", partition="{date:%Y/%m/%d}", input_columns=["a"])
    >>> night_location(spec, date(2026, 3, 1))
    's3://logs/fraud/2026/03/01'
    """
    return f"{str(source.landing).rstrip('/')}/{source.partition.format(date=batch_date)}"


def _filesystem(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:
        raise InvalidBatchError(f"{location}: cannot open ({one_line(exc)})") from None


def night_files(source: SourceSpec, batch_date: date) -> list[str]:
    """Every ``.parquet``/``.csv`` file under the night's partition, sorted, as URLs or paths."""
    location = night_location(source, batch_date)
    fs, root = _filesystem(location)
    suffix = f".{source.format}"
    try:
        found = fs.find(root, withdirs=True, detail=True)
    except FileNotFoundError:
        found = {}
    except Exception as exc:  # unreachable host, denied credentials: the source's fault
        raise InvalidBatchError(f"{location}: cannot list ({one_line(exc)})") from None
    files = []
    for path, info in sorted(found.items()):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(("_", ".")) or not name.endswith(suffix):
            continue
        if info.get("type") == "directory":
            raise InvalidBatchError(f"{name}: is a directory, not a {source.format} file")
        files.append(path if not is_url(location) else fs.unstrip_protocol(path))
    if not files:
        raise InvalidBatchError(f"no {source.format} files in {location}")
    return files


# -- reading ------------------------------------------------------------------------------------------


def _file_batches(
    file: str, fmt: str, columns: list[str], numeric: list[str], skip: int = 0
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(first row in the file, record batch)`` of the file's ``columns``, from the row group
    holding row ``skip`` on (parquet: earlier row groups are skipped unread, from the metadata);
    unreadable files fail in one line."""
    name = file.rsplit("/", 1)[-1]
    fs, path = _filesystem(file)
    try:
        with fs.open(path, "rb") as handle:
            if fmt == "csv":
                reader = pa_csv.open_csv(
                    handle,
                    read_options=pa_csv.ReadOptions(block_size=1 << 22),
                    convert_options=pa_csv.ConvertOptions(
                        include_columns=columns,
                        column_types={c: pa.float64() for c in numeric},
                    ),
                )
                offset = 0
                for record_batch in reader:
                    yield offset, record_batch
                    offset += record_batch.num_rows
                return
            # page by page through a small buffer, not whole pre-buffered column chunks
            parquet = pq.ParquetFile(handle, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise InvalidBatchError(f"{name}: missing column '{missing[0]}'")
            offset = 0
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                if offset + rows <= skip:
                    offset += rows
                    continue
                for record_batch in parquet.iter_batches(
                    columns=columns, batch_size=CHUNK_ROWS, row_groups=[group]
                ):
                    yield offset, record_batch
                    offset += record_batch.num_rows
    except InvalidBatchError:
        raise
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        if "include_columns" in str(exc):
            raise InvalidBatchError(f"{name}: missing column ({one_line(exc)})") from None
        raise InvalidBatchError(f"{name}: not a readable {fmt} file ({one_line(exc)})") from None
    except Exception as exc:  # denied, unreachable, dropped connection: the source's fault
        raise InvalidBatchError(f"{name}: cannot read ({one_line(exc)})") from None


def _parquet_rows(file: str) -> int | None:
    """The file's row count from its parquet footer, or None when it cannot be had cheaply."""
    fs, path = _filesystem(file)
    try:
        with fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except Exception:  # unreadable: let _file_batches fail with its one-line reason
        return None


def _role(source: SourceSpec, column: str) -> str:
    if column == source.id_column:
        return "id column"
    return "input column" if column in source.input_columns else "model column"


def _conform(
    record_batch: pa.RecordBatch, source: SourceSpec, where: str, offset: int
) -> pa.RecordBatch:
    """Validate one record batch and cast it to the night's schema (numbers as float64,
    UUID ids as strings), so parts written as float32 and float64 join."""
    arrays = []
    for name, column in zip(record_batch.schema.names, record_batch.columns, strict=True):
        role = _role(source, name)
        nulls = pc.is_null(column, nan_is_null=True)
        if role == "id column":
            if pc.any(nulls).as_py():
                raise InvalidBatchError(
                    f"{where}: id column '{name}' has nulls at row {_first(nulls) + offset}"
                )
            arrays.append(_id_array(column))
            continue
        dtype = column.type
        if pa.types.is_null(dtype) and len(column):
            raise InvalidBatchError(f"{where}: {role} '{name}' has null/NaN at row {offset}")
        if not (
            pa.types.is_floating(dtype)
            or pa.types.is_integer(dtype)
            or pa.types.is_decimal(dtype)
            or pa.types.is_null(dtype)
        ):
            raise InvalidBatchError(f"{where}: {role} '{name}' has type {dtype}, expected a number")
        if pa.types.is_integer(dtype) and len(column):
            too_big = pc.greater(pc.abs(pc.cast(column, pa.float64(), safe=False)), EXACT_INT)
            if pc.any(too_big).as_py():
                row = _first(too_big)
                raise InvalidBatchError(
                    f"{where}: {role} '{name}' has {column[row].as_py()} at row {row + offset}, "
                    "an integer too large to use as a number (above 2^53)"
                )
        values = pc.cast(column, pa.float64())
        limit = min(FLOAT32_MAX, source.max_abs_value)
        bad = pc.or_kleene(nulls, pc.greater(pc.abs(values), limit))  # inf included
        if pc.any(bad).as_py():
            row = _first(bad)
            value = values[row].as_py()
            what = "null/NaN" if value is None or value != value else f"{value:g}"
            beyond = (
                "" if what == "null/NaN" or abs(value) == float("inf")
                else " (beyond float32)" if abs(value) > FLOAT32_MAX
                # a finite float32 this large overflows the model's sums and distances
                else f" (beyond source.max_abs_value {source.max_abs_value:g})"
            )
            raise InvalidBatchError(
                f"{where}: {role} '{name}' has {what} at row {row + offset}{beyond}"
            )
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, names=record_batch.schema.names)


def _first(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _id_array(column: pa.Array) -> pa.Array:
    """Ids as they are (string, integer); UUIDs (16-byte binary) as canonical strings."""
    if isinstance(column.type, pa.BaseExtensionType) or pa.types.is_fixed_size_binary(column.type):
        storage = column.storage if isinstance(column.type, pa.BaseExtensionType) else column
        return pa.array([str(uuid.UUID(bytes=b)) for b in storage.to_pylist()], pa.string())
    return column


def _night_batches(
    source: SourceSpec,
    batch_date: date,
    files: list[str],
    columns: list[str],
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[str, int, pa.RecordBatch]]:
    """``(file or query, first row in the night, record batch)`` in the night's row order,
    from the batch holding row ``start`` on (earlier files and row groups are not read)."""
    if source.sql is not None:
        from drift import sql_source

        offset = start  # the query itself skips to ``start``
        for record_batch in sql_source.stream(source, batch_date, columns, start, stop):
            yield "query", offset, record_batch
            offset += record_batch.num_rows
        return
    numeric = [c for c in columns if c != source.id_column]
    offset = 0
    for file in files:
        if stop is not None and offset >= stop:
            return
        if start > offset and source.format == "parquet":
            n_rows = _parquet_rows(file)
            if n_rows is not None and offset + n_rows <= start:
                offset += n_rows
                continue
        n_rows = 0
        for first, record_batch in _file_batches(
            file, source.format, columns, numeric, skip=max(start - offset, 0)
        ):
            yield file.rsplit("/", 1)[-1], offset + first, record_batch
            n_rows = first + record_batch.num_rows
            if stop is not None and offset + n_rows >= stop:
                return
        offset += n_rows


@dataclass(frozen=True)
class BatchInfo:
    files: list[str]
    n_rows: int
    #: rows whose id another row of the night already has (a warning, not a failure)
    n_duplicate_ids: int = 0
    warnings: list[str] = field(default_factory=list)


def inspect_batch(source: SourceSpec, batch_date: date, columns: list[str]) -> BatchInfo:
    """Find and validate the night's rows; raises InvalidBatchError on any problem."""
    files = [] if source.sql is not None else night_files(source, batch_date)
    n_rows, ids = 0, []
    for where, _, record_batch in _night_batches(source, batch_date, files, columns):
        conformed = _conform(record_batch, source, where, n_rows)
        if source.id_column:
            ids.append(conformed.column(source.id_column))
        n_rows += record_batch.num_rows
    if n_rows == 0:
        what = "the query returned 0 rows" if source.sql else "the batch is empty (0 rows)"
        raise InvalidBatchError(
            f"{source.sql and 'query' or night_location(source, batch_date)}: {what}"
        )
    warnings = []
    n_duplicates = 0
    if ids:
        n_duplicates = n_rows - pc.count_distinct(pa.chunked_array(ids)).as_py()
        if n_duplicates:
            warnings.append(f"id column '{source.id_column}' has {n_duplicates} duplicate ids")
            log.warning("%s: %s", batch_date, warnings[-1])
    return BatchInfo(files=files, n_rows=n_rows, n_duplicate_ids=n_duplicates, warnings=warnings)


def plan_shards(n_rows: int, shard_rows: int) -> list[ShardRange]:
    """Row ranges of at most ``shard_rows`` rows covering ``n_rows``."""
    return [
        {"index": i, "start": start, "stop": min(start + shard_rows, n_rows)}
        for i, start in enumerate(range(0, n_rows, shard_rows))
    ]


def read_rows(
    source: SourceSpec,
    batch_date: date,
    files: list[str],
    columns: list[str],
    start: int = 0,
    stop: int | None = None,
) -> pd.DataFrame:
    """Rows ``[start, stop)`` of the night, validated, reading only what overlaps: earlier
    files and parquet row groups are skipped from their metadata, not decoded."""
    pieces = []
    for where, lo, record_batch in _night_batches(source, batch_date, files, columns, start, stop):
        if stop is not None and lo >= stop:
            break
        if lo + record_batch.num_rows <= start:
            continue
        begin = max(start - lo, 0)
        end = record_batch.num_rows if stop is None else min(stop - lo, record_batch.num_rows)
        pieces.append(_conform(record_batch.slice(begin, end - begin), source, where, lo + begin))
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pa.Table.from_batches(pieces).to_pandas()


def read_reference(path: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    """A parquet file (local or any fsspec URL) with ``columns``."""
    fs, inner = _filesystem(str(path))
    try:
        exists = fs.isfile(inner)
    except Exception as exc:
        raise InvalidBatchError(f"{path}: cannot read ({one_line(exc)})") from None
    if not exists:
        raise FileNotFoundError(f"reference file not found: {path}")
    try:
        with fs.open(inner, "rb") as handle:
            frame = pd.read_parquet(handle, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidBatchError(
            f"{Path(str(path)).name}: not a readable parquet file ({one_line(exc)})"
        ) from None
    if frame.empty:
        raise InvalidBatchError(f"{path}: the reference is empty")
    return frame
