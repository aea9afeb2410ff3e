"""Model adapters: turn raw input rows into ``(features, logits)``.

The monitored model's ``forward(x)`` returns ``(features, logits)``. Supported
formats (see :class:`drift.config.ModelSpec`):

- ``export``: a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``);
- ``torchscript``: a TorchScript file (deprecated upstream, still widely deployed);
- ``entrypoint``: ``"package.module:function"`` returning such a module;
- ``precomputed``: the batch already holds embedding and logit columns.

No format unpickles arbitrary objects: every pickle in a ``.pt2`` is proven to
load under torch's weights-only unpickler before torch reads the archive (see
:mod:`drift.model_files`), TorchScript archives are read by the TorchScript
unpickler, which resolves no Python globals, and an entry point is code the
operator installed.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drift.batch import FeatureBatch, InvalidBatchError
from drift.model_files import ModelFileError, check_torchscript, first_line, read_export_archive

if TYPE_CHECKING:
    import pandas as pd

    from drift.config import ModelSpec


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelFileError("model.device is 'cuda' but no CUDA device is available")
    return device


def load_module(spec: ModelSpec) -> Callable:
    """The monitored model as a callable ``x -> (features, logits)`` on its device.

    Cached per process by file and modification time, so shards of a night
    (and nights of a backfill) load the model once.
    """
    if spec.format in ("export", "torchscript"):
        if spec.path is None or not spec.path.is_file():
            raise FileNotFoundError(f"model file not found: {spec.path}")
        stamp = spec.path.stat().st_mtime_ns
    else:
        stamp = 0
    return _load_module(
        spec.format, str(spec.path), spec.entrypoint, resolve_device(spec.device), stamp
    )


@lru_cache(maxsize=4)
def _load_module(fmt: str, path: str, entrypoint: str | None, device: str, _stamp: int) -> Callable:
    import torch

    if fmt == "export":
        # torch loads the bytes that were checked, not the file again; exported
        # programs are already traced in eval mode
        checked = read_export_archive(Path(path))
        return _torch_load_failure(path, lambda: torch.export.load(io.BytesIO(checked)).module().to(device))
    if fmt == "torchscript":
        check_torchscript(Path(path))
        return _torch_load_failure(path, lambda: torch.jit.load(path, map_location=device).eval())
    if fmt == "entrypoint":
        assert entrypoint is not None  # ModelSpec's validator
        module_name, function_name = entrypoint.split(":")
        return getattr(importlib.import_module(module_name), function_name)().eval().to(device)
    raise ValueError("precomputed models have no module to load")


def _torch_load_failure(path: str, load: Callable[[], Callable]) -> Callable:
    """``load()``, with torch's multi-line errors on a damaged archive turned into one line."""
    try:
        return load()
    except (RuntimeError, ValueError, KeyError, AssertionError) as exc:
        raise ModelFileError(f"{path}: torch could not load the model ({first_line(exc)})") from None


@dataclass
class Embedder:
    """Embeds raw input rows with a monitored model, in chunks, under inference mode.

    Parameters
    ----------
    spec
        the monitor's model spec.
    input_columns
        the raw columns fed to the model, in this order.
    """

    spec: ModelSpec
    input_columns: list[str]

    def __post_init__(self) -> None:
        self._module: Callable | None = None

    def _model(self) -> Callable:
        if self._module is None:
            self._module = load_module(self.spec)
        return self._module

    def embed_frame(self, frame: pd.DataFrame, first_row: int = 0) -> FeatureBatch:
        """``FeatureBatch`` of the rows in ``frame`` (raw inputs or precomputed columns);
        ``first_row`` is the night's row number of the frame's first row (for messages)."""
        if self.spec.format == "precomputed":
            features = frame[self.spec.feature_columns].to_numpy(np.float32)
            logits = (
                frame[self.spec.logit_columns].to_numpy(np.float32)
                if self.spec.logit_columns
                else None
            )
            return FeatureBatch(features, logits)
        return self.embed_array(frame[self.input_columns].to_numpy(np.float32), first_row)

    def embed_array(self, inputs: np.ndarray, first_row: int = 0) -> FeatureBatch:
        import torch

        model = self._model()
        device = resolve_device(self.spec.device)
        features, logits = [], []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.spec.batch_size):
                chunk = torch.from_numpy(
                    np.ascontiguousarray(inputs[start : start + self.spec.batch_size])
                )
                try:
                    output = model(chunk.to(device))
                except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
                    raise InvalidBatchError(
                        f"model {self.spec.path or self.spec.entrypoint}: forward failed on "
                        f"{inputs.shape[1]} input columns ({', '.join(self.input_columns)}): {first_line(exc)}"
                    ) from None
                if not (isinstance(output, tuple | list) and len(output) == 2):
                    raise InvalidBatchError(
                        "model: forward(x) must return (features, logits), "
                        f"got {type(output).__name__}"
                    )
                features.append(output[0].float().cpu().numpy())
                logits.append(output[1].float().cpu().numpy())
                self._check_finite(inputs, start, features[-1], logits[-1], first_row)
        return FeatureBatch(np.concatenate(features), np.concatenate(logits))

    def _check_finite(
        self, inputs: np.ndarray, start: int, features: np.ndarray, logits: np.ndarray, first_row: int
    ) -> None:
        """Name the input row (and its largest value's column) whose outputs overflowed:
        finite float32 inputs as large as 1e38 still overflow most models."""
        finite = np.isfinite(features).all(axis=1) & np.isfinite(logits).all(axis=1)
        if finite.all():
            return
        row = start + int(np.flatnonzero(~finite)[0])
        col = int(np.argmax(np.abs(inputs[row])))
        raise InvalidBatchError(
            f"model output is not finite for row {first_row + row} "
            f"(input column '{self.input_columns[col]}' = {inputs[row, col]:g}): "
            "inputs that large overflow the model"
        )
