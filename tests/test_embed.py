"""Model adapters: every format gives the same (features, logits) as the model itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from drift import digits
from drift.batch import InvalidBatchError
from drift.config import ModelSpec
from drift.embed import Embedder

COLUMNS = [f"px_{i:02d}" for i in range(digits.N_PIXELS)]


@pytest.fixture(scope="module")
def model_and_inputs():
    split = digits.load_digits_split(seed=0)
    model = digits.train_digits_model(split.x_train[:300], split.y_train[:300], split.n_classes, seed=0, epochs=2)
    return model, split.x_test[:50]


def build_digits_model() -> torch.nn.Module:
    """An entry point as a user would write it: returns the monitored module."""
    torch.manual_seed(0)
    return digits.DigitsNet(n_classes=8).eval()


def test_export_torchscript_and_precomputed_agree(tmp_path, model_and_inputs):
    model, x = model_and_inputs
    expected_features, expected_logits = digits.embed(model, x)

    program = torch.export.export(model, (torch.zeros(2, 64),), dynamic_shapes=({0: torch.export.Dim("rows")},))
    torch.export.save(program, str(tmp_path / "model.pt2"))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "model.ts"))
    frame = pd.DataFrame(x, columns=COLUMNS)
    specs = [
        ModelSpec(format="export", path=tmp_path / "model.pt2", batch_size=16),  # several chunks
        ModelSpec(format="torchscript", path=tmp_path / "model.ts", batch_size=7),
    ]
    for spec in specs:
        batch = Embedder(spec, COLUMNS).embed_frame(frame)
        np.testing.assert_allclose(batch.features, expected_features, atol=1e-5)
        np.testing.assert_allclose(batch.logits, expected_logits, atol=1e-5)

    for i in range(expected_features.shape[1]):
        frame[f"emb_{i}"] = expected_features[:, i]
    for i in range(expected_logits.shape[1]):
        frame[f"logit_{i}"] = expected_logits[:, i]
    precomputed = ModelSpec(
        format="precomputed",
        feature_columns=[f"emb_{i}" for i in range(expected_features.shape[1])],
        logit_columns=[f"logit_{i}" for i in range(expected_logits.shape[1])],
    )
    batch = Embedder(precomputed, COLUMNS).embed_frame(frame)
    np.testing.assert_array_equal(batch.features, expected_features)


def test_entrypoint_model():
    spec = ModelSpec(format="entrypoint", entrypoint="tests.test_embed:build_digits_model")
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    batch = Embedder(spec, COLUMNS).embed_array(x)
    expected = digits.embed(build_digits_model(), x)
    np.testing.assert_allclose(batch.features, expected[0], atol=1e-6)


def test_model_that_returns_one_tensor_is_refused(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(64, 3)), str(tmp_path / "bad.ts"))
    spec = ModelSpec(format="torchscript", path=tmp_path / "bad.ts")
    with pytest.raises(InvalidBatchError, match=r"must return \(features, logits\)"):
        Embedder(spec, COLUMNS).embed_array(np.zeros((2, 64), dtype=np.float32))


def test_missing_model_file_is_named(tmp_path):
    spec = ModelSpec(format="export", path=tmp_path / "nope.pt2")
    with pytest.raises(FileNotFoundError, match="nope.pt2"):
        Embedder(spec, COLUMNS).embed_array(np.zeros((1, 64), dtype=np.float32))
