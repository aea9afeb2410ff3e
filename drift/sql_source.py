"""A night's rows from a table: ``source.sql`` run with ``:batch_date`` on ``source.url``.

The query runs wrapped as ``SELECT * FROM (<sql>) AS night ORDER BY <key>``
(``source.order_by``, else the id column) and is read through a server-side
cursor in chunks of :data:`~drift.sources.CHUNK_ROWS`, so only one chunk is in
memory at a time. A shard adds ``LIMIT``/``OFFSET`` for its row range: with a
unique key, every read of the night (inspection, each shard, a re-run) sees
the same rows in the same order. ``${VAR}`` in the URL is expanded when
connecting, so the password stays in the environment and out of every stored
config and message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from drift.batch import InvalidBatchError
from drift.sources import CHUNK_ROWS, one_line

if TYPE_CHECKING:
    from drift.config import SourceSpec


def expand_url(url: str) -> str:
    """``url`` with ``${VAR}`` replaced from the environment; an unset variable fails by name."""
    missing = [name for name in re.findall(r"\$\{(\w+)\}", url) if name not in os.environ]
    if missing:
        raise InvalidBatchError(f"source.url: environment variable {missing[0]} is not set")
    return os.path.expandvars(url)


def stream(
    source: SourceSpec,
    batch_date: date,
    columns: list[str],
    start: int = 0,
    stop: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` for rows ``[start, stop)`` of the night's ordered query."""
    assert source.url is not None and source.sql is not None  # SourceSpec's validator
    url = expand_url(source.url)
    try:
        engine = create_engine(url)
    except SQLAlchemyError as exc:  # never echo the URL: it holds the password
        raise InvalidBatchError(
            f"source.url: not a usable database URL ({type(exc).__name__})"
        ) from None
    password = engine.url.password or ""
    secrets = (password,) if password else ()
    quote = engine.dialect.identifier_preparer.quote
    key = source.order_by or source.id_column
    assert key is not None  # SourceSpec's validator: a query needs a key to order by
    query = f"SELECT * FROM ({source.sql.strip().rstrip(';')}) AS night ORDER BY {quote(key)}"
    params: dict[str, object] = {"batch_date": batch_date}
    if stop is not None:
        query += " LIMIT :n_rows"
        params["n_rows"] = stop - start
    if start:
        query += " OFFSET :first_row"
        params["first_row"] = start
    try:
        with engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=CHUNK_ROWS
            ).execute(text(query), params)
            names = list(result.keys())
            missing = [c for c in columns if c not in names]
            if missing:
                raise InvalidBatchError(f"query: no column '{missing[0]}' in its result")
            for part in result.partitions():
                frame = pd.DataFrame(part, columns=names)[columns]
                yield pa.RecordBatch.from_pandas(frame, preserve_index=False)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise InvalidBatchError(f"query on {_where(url)}: {one_line(cause, secrets)}") from None
    finally:
        engine.dispose()


def _where(url: str) -> str:
    """The database named without its credentials."""
    parsed = make_url(url)
    return f"{parsed.drivername}://{parsed.host or ''}{f':{parsed.port}' if parsed.port else ''}/{parsed.database or ''}"
