"""The shared small-scale setting: scikit-learn digits, a tiny classifier, corruptions.

The demo, the detector-quality benchmark and the gate benchmark all use this one
setting so that their numbers describe the same model and the same shifts:

* **in-distribution** = the known digit classes (all but :data:`DIGITS_NOVEL_CLASSES`);
* **semantic / near-OOD** = the held-out classes (8 and 9 by default);
* **covariate OOD** = known-class test digits passed through :func:`corrupt`.

The data ship with scikit-learn (1,797 8×8 images), so nothing is downloaded.

Examples
--------
>>> from drift.digits import load_digits_split, train_digits_model, embed, corrupt
>>> import numpy as np
>>> split = load_digits_split(seed=0)
>>> split.x_train.shape[1], split.n_classes, split.known_classes
(64, 8, (0, 1, 2, 3, 4, 5, 6, 7))
>>> model = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=0)
>>> features, logits = embed(model, split.x_test)
>>> features.shape[1], logits.shape[1]
(64, 8)
>>> bool((logits.argmax(1) == split.y_test).mean() >= 0.95)
True
>>> noisy = corrupt(split.x_test, "noise", 3, np.random.default_rng(0))
>>> noisy.dtype, bool(noisy.min() >= 0.0 and noisy.max() <= 1.0)
(dtype('float32'), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from drift.adapt.mol import ShiftFn

#: Classes held out of training: the novel ("semantic shift") classes.
DIGITS_NOVEL_CLASSES: tuple[int, ...] = (8, 9)
#: Kinds accepted by :func:`corrupt`.
CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "rotation", "occlusion")

IMAGE_SIDE = 8
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
_MAX_PIXEL = 16.0  # digits pixels are integers 0..16


@dataclass(frozen=True)
class DigitsSplit:
    """A seeded split of scikit-learn digits into known-class and novel-class rows.

    ``x_*`` are float32 (n, 64) images scaled to [0, 1]; ``y_train``, ``y_calib``,
    ``y_test`` are int64 labels re-indexed to 0..C-1 (``known_classes[i]`` is the
    original digit of label ``i``); ``y_novel`` keeps the original digits.
    ``x_calib`` is for fitting thresholds and must stay out of any detector bank.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_novel: np.ndarray
    y_novel: np.ndarray
    known_classes: tuple[int, ...]

    @property
    def n_classes(self) -> int:
        return len(self.known_classes)


def load_digits_split(
    seed: int = 0,
    novel_classes: tuple[int, ...] = DIGITS_NOVEL_CLASSES,
    calib_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DigitsSplit:
    """Split digits: known classes stratified into train / calib / test, novel classes apart.

    Examples
    --------
    >>> s = load_digits_split(seed=1, novel_classes=(0,))
    >>> s.known_classes[0], sorted(set(s.y_novel.tolist())), int(s.y_train.max())
    (1, [0], 8)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, digits = load_digits(return_X_y=True)
    x = (images / _MAX_PIXEL).astype(np.float32)
    digits = digits.astype(np.int64)
    novel = np.isin(digits, novel_classes)
    known_classes = tuple(int(c) for c in np.unique(digits[~novel]))
    relabel = {c: i for i, c in enumerate(known_classes)}
    x_known = x[~novel]
    y_known = np.array([relabel[int(c)] for c in digits[~novel]], dtype=np.int64)

    x_train, x_rest, y_train, y_rest = train_test_split(
        x_known, y_known, test_size=calib_fraction + test_fraction,
        stratify=y_known, random_state=seed,
    )
    x_calib, x_test, y_calib, y_test = train_test_split(
        x_rest, y_rest, test_size=test_fraction / (calib_fraction + test_fraction),
        stratify=y_rest, random_state=seed,
    )
    return DigitsSplit(
        x_train, y_train, x_calib, y_calib, x_test, y_test,
        x_novel=x[novel], y_novel=digits[novel], known_classes=known_classes,
    )


class DigitsNet(nn.Module):
    """A small CNN on 8×8 digits whose ``forward`` returns ``(features, logits)``.

    Two 3×3 convolutions, a 2×2 max-pool and a ``feature_dim`` ReLU layer (the
    penultimate features the OOD detectors read), then a linear classifier.
    Plain tensor ops only, so it survives ``torch.export.export`` and
    ``torch.jit.script``.

    Examples
    --------
    >>> net = DigitsNet(n_classes=8)
    >>> f, z = net(torch.zeros(2, 64))
    >>> tuple(f.shape), tuple(z.shape)
    ((2, 64), (2, 8))
    """

    def __init__(self, n_classes: int, feature_dim: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (IMAGE_SIDE // 2) ** 2, feature_dim),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # literals, not module constants: TorchScript cannot read Python globals
        features = self.encoder(x.reshape(-1, 1, 8, 8))
        return features, self.classifier(features)


def train_digits_model(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> DigitsNet:
    """Train a :class:`DigitsNet` with Adam and cross-entropy; deterministic given ``seed``.

    Takes a few seconds on one CPU core; returns the model in eval mode.
    """
    with torch.random.fork_rng():  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        model = DigitsNet(n_classes)
        inputs = torch.as_tensor(x, dtype=torch.float32)
        targets = torch.as_tensor(y, dtype=torch.int64)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(inputs))
            for start in range(0, len(inputs), batch_size):
                rows = order[start : start + batch_size]
                _, logits = model(inputs[rows])
                loss = nn.functional.cross_entropy(logits, targets[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return model.eval()


def embed(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(features, logits)`` of ``model`` on the rows of ``x``, in chunks."""
    features, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            f, z = model(torch.as_tensor(x[start : start + batch_size], dtype=torch.float32))
            features.append(f.numpy())
            logits.append(z.numpy())
    return np.concatenate(features), np.concatenate(logits)


# Per-severity strength of each corruption (severity 1..5 picks the entry).
_NOISE_SIGMA = (0.08, 0.16, 0.24, 0.32, 0.40)  # Gaussian pixel noise, image range [0, 1]
_BLUR_SIGMA = (0.5, 0.7, 0.9, 1.1, 1.3)  # Gaussian blur, in pixels of the 8×8 image
_ROTATION_DEG = (10.0, 20.0, 30.0, 45.0, 60.0)  # rotation magnitude, random sign
_OCCLUSION_SIDE = (2, 3, 4, 5, 6)  # side of a zeroed square at a random place


def corrupt(x: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupted copies of the (n, 64) images ``x``: float32, clipped to [0, 1].

    Parameters
    ----------
    kind
        one of :data:`CORRUPTIONS`.
    severity
        1 (mild) .. 5 (strong).
    rng
        source of the noise, rotation signs and occlusion positions.

    Examples
    --------
    >>> x = np.full((2, 64), 0.5, dtype=np.float32)
    >>> occluded = corrupt(x, "occlusion", 2, np.random.default_rng(0))
    >>> int((occluded == 0).sum(axis=1)[0])
    9
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{kind}' (known: {', '.join(CORRUPTIONS)})")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    level = severity - 1
    images = np.asarray(x, dtype=np.float32).reshape(-1, IMAGE_SIDE, IMAGE_SIDE).copy()
    if kind == "noise":
        images += rng.normal(0.0, _NOISE_SIGMA[level], size=images.shape).astype(np.float32)
    elif kind == "blur":
        # axes=(1, 2): blur within each image, never across the batch
        images = ndimage.gaussian_filter(images, sigma=_BLUR_SIGMA[level], axes=(1, 2))
    elif kind == "rotation":
        signs = rng.choice([-1.0, 1.0], size=len(images))
        for i, sign in enumerate(signs):
            images[i] = ndimage.rotate(
                images[i], sign * _ROTATION_DEG[level], reshape=False, order=1, mode="constant"
            )
    else:  # occlusion
        side = _OCCLUSION_SIDE[level]
        corners = rng.integers(0, IMAGE_SIDE - side + 1, size=(len(images), 2))
        for i, (row, col) in enumerate(corners):
            images[i, row : row + side, col : col + side] = 0.0
    return np.clip(images.reshape(-1, N_PIXELS), 0.0, 1.0).astype(np.float32)


def random_corruption(
    kinds: Sequence[str] = CORRUPTIONS, severities: Sequence[int] = (1, 2, 3, 4, 5)
) -> ShiftFn:
    """A shift function applying one corruption of random kind and severity to all rows.

    Examples
    --------
    >>> shift = random_corruption(kinds=("noise",), severities=(5,))
    >>> rows = np.zeros((3, 64), dtype=np.float32)
    >>> shifted = shift(rows, np.random.default_rng(0))
    >>> shifted.shape, bool(shifted.max() > 0)
    ((3, 64), True)
    """
    kinds, severities = tuple(kinds), tuple(severities)

    def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kind = kinds[rng.integers(len(kinds))]
        return corrupt(x, kind, int(rng.choice(severities)), rng)

    return shift
