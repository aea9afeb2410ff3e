"""Pickle-free persistence shared by the adaptation classes: JSON metadata +
safetensors weights in a folder written to a temporary name and renamed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drift.atomic import atomic_folder as write_folder

FORMAT_VERSION = 1
META_FILE = "meta.json"


class AdaptFileError(ValueError):
    """A saved adaptation artifact is missing, of another type or of an unknown version."""


@contextmanager
def atomic_folder(path: str | os.PathLike, kind: str, meta: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success write ``meta.json`` and rename it to ``path``.

    Readers never see a half-written artifact: the folder appears under its final
    name only once complete (an existing one is replaced).
    """
    with write_folder(path) as tmp:
        yield tmp
        document = {"type": kind, "format_version": FORMAT_VERSION, **meta}
        (tmp / META_FILE).write_text(json.dumps(document, indent=2))


def read_meta(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """The ``meta.json`` of a folder written by :func:`atomic_folder`, checked for type and version."""
    meta_file = Path(path) / META_FILE
    if not meta_file.is_file():
        raise AdaptFileError(f"{path}: not a saved adaptation artifact (no {META_FILE})")
    meta = json.loads(meta_file.read_text())
    if meta.get("type") != kind:
        raise AdaptFileError(f"{path}: holds a '{meta.get('type')}' artifact, not '{kind}'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise AdaptFileError(
            f"{path}: format version {meta.get('format_version')!r}; this reads {FORMAT_VERSION}"
        )
    return meta
