"""FeatureBatch: the rows a detector sees, validated once at construction.

A batch never silently drops or imputes: anything malformed raises
:class:`InvalidBatchError` naming the column and the first offending row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InvalidBatchError(ValueError):
    """A batch (or its raw input) is malformed; the message names what is wrong."""


def _check_matrix(name: str, values: object, n_rows: int | None) -> np.ndarray:
    try:
        array = np.asarray(values)
    except Exception as exc:  # ragged lists and the like
        raise InvalidBatchError(f"{name}: cannot be read as a matrix ({exc})") from exc
    if array.ndim != 2:
        raise InvalidBatchError(f"{name}: expected a 2-D array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidBatchError(f"{name}: expected numbers, got dtype {array.dtype}")
    if n_rows is not None and array.shape[0] != n_rows:
        raise InvalidBatchError(f"{name}: has {array.shape[0]} rows, features have {n_rows}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidBatchError(
            f"{name}: non-finite value {array[row, col]} at row {row}, column {col}"
        )
    return array


@dataclass(frozen=True)
class FeatureBatch:
    """Model outputs for a set of rows.

    Parameters
    ----------
    features
        float32 (n, d) embeddings from the monitored model.
    logits
        float32 (n, c) class logits, or None when the model has no classifier head.
    ids
        (n,) row identifiers, or None.
    labels
        int (n,) true labels where known (reference data, feedback), or None.

    Examples
    --------
    >>> import numpy as np
    >>> b = FeatureBatch(np.zeros((3, 4)), logits=np.ones((3, 2)))
    >>> b.features.dtype, len(b)
    (dtype('float32'), 3)
    >>> FeatureBatch(np.array([[0.0, np.nan]]))
    Traceback (most recent call last):
    ...
    drift.batch.InvalidBatchError: features: non-finite value nan at row 0, column 1
    """

    features: np.ndarray
    logits: np.ndarray | None = None
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        features = _check_matrix("features", self.features, None)
        if features.shape[0] == 0:
            raise InvalidBatchError("features: the batch is empty (0 rows)")
        n = features.shape[0]
        object.__setattr__(self, "features", features)
        if self.logits is not None:
            object.__setattr__(self, "logits", _check_matrix("logits", self.logits, n))
        if self.ids is not None:
            ids = np.asarray(self.ids)
            if ids.shape != (n,):
                raise InvalidBatchError(f"ids: expected shape ({n},), got {ids.shape}")
            object.__setattr__(self, "ids", ids)
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (n,):
                raise InvalidBatchError(f"labels: expected shape ({n},), got {labels.shape}")
            if not np.issubdtype(labels.dtype, np.integer):
                raise InvalidBatchError(f"labels: expected integers, got dtype {labels.dtype}")
            object.__setattr__(self, "labels", labels.astype(np.int64))

    def __len__(self) -> int:
        return self.features.shape[0]

    def take(self, index: np.ndarray | slice) -> FeatureBatch:
        """The rows at ``index`` as a new batch."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return FeatureBatch(self.features[index], pick(self.logits), pick(self.ids), pick(self.labels))
