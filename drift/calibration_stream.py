"""The calibration stream: an over-fitted model watched with its own training set as reference.

The most common set-up and the one that breaks naive calibration: the
reference file *is* the model's training data, so thresholds fitted on a
held-out share of it are fitted on rows the model trained on. Those score lower
(more confident logits) than any production row, so clean nights flag more
than the calibrated rate. Used by the calibration tests and
``benchmarks/calibration_stream.py``.

* data: ``N_CLASSES`` overlapping Gaussian classes in ``N_INPUTS`` dimensions
  (the known population) and one more class, ``NOVEL_CLASS`` (the *novel*
  rows of a shift);
* model: a small MLP trained to 100% training accuracy on ``N_TRAIN`` rows
  whose labels are ``LABEL_NOISE`` random (about 79% on unseen rows),
  exported with ``torch.export``;
* nights: ``rows_per_night`` unseen known-population rows under
  ``landing/ds=<date>/``; from night ``shift_from`` on, ``novel_share`` of them novel.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> stream = build_stream(root, nights=2, rows_per_night=50, epochs=5)
>>> sorted(p.name for p in (root / "landing").iterdir())
['ds=2026-11-01', 'ds=2026-11-02']
>>> write_config(root, window=(FIRST_NIGHT, FIRST_NIGHT)).name
'monitor.yaml'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

FIRST_NIGHT = date(2026, 11, 1)
N_INPUTS = 16
N_CLASSES = 4
N_TRAIN = 1500
#: spread of the classes' means: neighbouring classes overlap
CLASS_SPREAD = 1.2
#: share of training labels replaced by random ones: the model memorises them
LABEL_NOISE = 0.3
#: the class of the novel rows (means are drawn for classes 0..NOVEL_CLASS, seeded)
NOVEL_CLASS = 6
MONITOR = "overfit"
INPUT_COLUMNS = [f"x{i}" for i in range(N_INPUTS)]


@dataclass(frozen=True)
class Stream:
    """What :func:`build_stream` wrote: the nights and where their shift starts."""

    root: Path
    nights: list[date]
    shift_from: date | None
    train_accuracy: float
    test_accuracy: float


def _rows(
    means: np.ndarray, n: int, novel_share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, N_CLASSES, n)
    labels[rng.random(n) < novel_share] = NOVEL_CLASS
    x = means[labels] + rng.normal(0.0, 1.0, (n, N_INPUTS))
    return x.astype(np.float32), labels


def _train(x: np.ndarray, y: np.ndarray, seed: int, epochs: int):  # noqa: ANN202 - torch module
    import torch
    from torch import nn

    class OverfitNet(nn.Module):
        """A wide MLP whose forward returns ``(features, logits)``."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(N_INPUTS, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU()
            )
            self.head = nn.Linear(32, N_CLASSES)

        def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(inputs)
            return features, self.head(features)

    torch.manual_seed(seed)
    model = OverfitNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):  # full batch, no regularisation: it memorises its training rows
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs)[1], targets).backward()
        optimiser.step()
    return model.eval()


def build_stream(
    root: Path,
    *,
    nights: int,
    rows_per_night: int = 500,
    shift_from: int | None = None,
    novel_share: float = 0.2,
    seed: int = 0,
    epochs: int = 300,
) -> Stream:
    """Model, reference (= the training rows, with labels) and landed nights under ``root``."""
    import torch

    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, CLASS_SPREAD, (NOVEL_CLASS + 1, N_INPUTS))
    x_train, y_train = _rows(means, N_TRAIN, 0.0, rng)
    noisy = rng.random(N_TRAIN) < LABEL_NOISE
    y_train[noisy] = rng.integers(0, N_CLASSES, int(noisy.sum()))
    model = _train(x_train, y_train, seed, epochs)
    x_test, y_test = _rows(means, 2000, 0.0, rng)
    with torch.inference_mode():
        train_accuracy = float((model(torch.from_numpy(x_train))[1].argmax(1).numpy() == y_train).mean())
        test_accuracy = float((model(torch.from_numpy(x_test))[1].argmax(1).numpy() == y_test).mean())
    root.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(
        model, (torch.zeros(2, N_INPUTS),), dynamic_shapes=({0: torch.export.Dim("rows")},)
    )
    torch.export.save(program, str(root / "model.pt2"))
    reference = pd.DataFrame(x_train, columns=INPUT_COLUMNS).assign(label=y_train)
    reference.to_parquet(root / "reference.parquet")

    days = [FIRST_NIGHT + timedelta(days=i) for i in range(nights)]
    for i, day in enumerate(days):
        share = novel_share if shift_from is not None and i >= shift_from else 0.0
        x, _ = _rows(means, rows_per_night, share, rng)
        folder = root / "landing" / f"ds={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(x, columns=INPUT_COLUMNS)
        frame.insert(0, "row_id", np.arange(len(x)) + i * 1_000_000)
        frame.to_parquet(folder / "part-0.parquet")
    start = days[shift_from] if shift_from is not None and shift_from < nights else None
    return Stream(root, days, start, train_accuracy, test_accuracy)


def write_config(
    root: Path, window: tuple[date, date] | None = None, name: str = "monitor.yaml"
) -> Path:
    """``root/<name>``: reference = the training file, thresholds on a held-out share of
    it, or on the production nights ``window`` (``reference.calibration_nights``)."""
    reference: dict[str, object] = {"path": "reference.parquet", "label_column": "label"}
    if window is not None:
        reference["calibration_nights"] = {"start": window[0].isoformat(), "end": window[1].isoformat()}
    config = {
        "monitors": [
            {
                "name": MONITOR,
                "model": {"format": "export", "path": "model.pt2", "device": "cpu"},
                "source": {"landing": "landing", "input_columns": INPUT_COLUMNS, "id_column": "row_id"},
                "reference": reference,
                "adaptation": {"enabled": False},
            }
        ]
    }
    path = root / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
