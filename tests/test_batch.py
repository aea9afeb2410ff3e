from __future__ import annotations

import numpy as np
import pytest

from drift.batch import FeatureBatch, InvalidBatchError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.zeros((0, 3))}, "empty"),
        ({"features": np.zeros(3)}, "2-D"),
        ({"features": np.array([["a", "b"]])}, "expected numbers"),
        ({"features": np.array([[1.0, np.inf]])}, "row 0, column 1"),
        ({"features": np.zeros((2, 3)), "logits": np.zeros((3, 2))}, "logits: has 3 rows"),
        ({"features": np.zeros((2, 3)), "labels": np.array([0.5, 1.0])}, "labels: expected integers"),
        ({"features": np.zeros((2, 3)), "ids": np.arange(3)}, "ids: expected shape"),
    ],
)
def test_malformed_batches_name_the_problem(kwargs, message):
    with pytest.raises(InvalidBatchError, match=message):
        FeatureBatch(**kwargs)


def test_valid_batch_is_float32_and_take_selects_rows():
    batch = FeatureBatch(np.arange(6).reshape(3, 2), logits=np.ones((3, 4)), labels=np.array([0, 1, 2]))
    assert batch.features.dtype == np.float32 and batch.logits.dtype == np.float32
    part = batch.take(np.array([2, 0]))
    assert part.labels.tolist() == [2, 0] and part.features[0].tolist() == [4.0, 5.0]
