"""The shared digits setting: split, model contract (export/script), corruptions."""

import numpy as np
import pytest
import torch

from drift.digits import (
    CORRUPTIONS,
    DIGITS_NOVEL_CLASSES,
    DigitsNet,
    corrupt,
    embed,
    load_digits_split,
    train_digits_model,
)


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def model(split):
    return train_digits_model(split.x_train, split.y_train, split.n_classes, seed=0)


def test_split_is_disjoint_and_reindexed(split):
    assert split.known_classes == tuple(c for c in range(10) if c not in DIGITS_NOVEL_CLASSES)
    for x, y in [(split.x_train, split.y_train), (split.x_calib, split.y_calib), (split.x_test, split.y_test)]:
        assert x.dtype == np.float32 and x.shape[1] == 64 and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(split.n_classes))
    assert set(np.unique(split.y_novel)) == set(DIGITS_NOVEL_CLASSES)
    rows = {r.tobytes() for r in split.x_train}
    assert not any(r.tobytes() in rows for r in split.x_calib)  # calib never overlaps train
    again = load_digits_split(seed=0)
    assert np.array_equal(again.x_test, split.x_test)


def test_model_is_accurate_and_deterministic(split, model):
    features, logits = embed(model, split.x_test)
    assert features.dtype == np.float32 and logits.shape == (len(split.x_test), split.n_classes)
    assert (logits.argmax(1) == split.y_test).mean() >= 0.95
    twin = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=0)
    assert np.array_equal(embed(twin, split.x_test)[1], logits)


def test_model_exports_and_scripts(model):
    x = torch.rand(5, 64)
    expected = model(x)
    exported = torch.export.export(model, (torch.rand(4, 64),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    scripted = torch.jit.script(model)
    for got in (exported.module()(x), scripted(x)):
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_are_valid_and_grow_with_severity(split, kind):
    x = split.x_test[:100]
    changes = []
    for severity in (1, 5):
        out = corrupt(x, kind, severity, np.random.default_rng(0))
        assert out.dtype == np.float32 and out.shape == x.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
        changes.append(np.abs(out - x).mean())
    assert 0 < changes[0] < changes[1]
    assert np.array_equal(corrupt(x, kind, 3, np.random.default_rng(1)), corrupt(x, kind, 3, np.random.default_rng(1)))


def test_corrupt_rejects_unknown_kind_and_severity():
    x = np.zeros((1, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "noise", 6, np.random.default_rng(0))


def test_digitsnet_shapes():
    features, logits = DigitsNet(n_classes=3, feature_dim=16)(torch.zeros(2, 64))
    assert features.shape == (2, 16) and logits.shape == (2, 3)
