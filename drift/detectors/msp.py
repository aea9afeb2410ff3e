"""Maximum softmax probability baseline (Hendrycks & Gimpel, ICLR 2017)."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from drift.detectors import register
from drift.detectors.base import LogitDetector


@register
class MSPDetector(LogitDetector):
    r"""Minus the largest softmax probability: :math:`-\max_c \mathrm{softmax}(f(x)/T)_c`.

    Higher = more OOD (a confident prediction scores near -1, a uniform one -1/C).
    Same sign and formula as pytorch-ood's ``MaxSoftmax``.

    Parameters
    ----------
    temperature
        T; 1 is the original baseline, T > 1 is the temperature-scaled variant.

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> ref = FeatureBatch(np.zeros((2, 3)), logits=np.array([[5.0, 0.0], [0.0, 5.0]]))
    >>> det = MSPDetector().fit(ref)
    >>> det.score(FeatureBatch(np.zeros((2, 3)), logits=np.array([[0.0, 0.0], [9.0, 0.0]]))).round(4)
    array([-0.5   , -0.9999])

    References
    ----------
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
    Examples in Neural Networks", ICLR 2017.
    """

    name = "msp"

    def score_logits(self, logits: np.ndarray) -> np.ndarray:
        return -softmax(logits / self.temperature, axis=1).max(axis=1)
