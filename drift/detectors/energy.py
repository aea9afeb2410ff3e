"""Energy score (Liu, Wang, Owens, Li, NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from drift.detectors import register
from drift.detectors.base import LogitDetector


@register
class EnergyDetector(LogitDetector):
    r"""Free energy of the logits: :math:`E(x) = -T \log \sum_c e^{f_c(x)/T}`.

    Higher energy = more OOD. Needs no fitting beyond recording the class count.

    Parameters
    ----------
    temperature
        T; the paper and OpenOOD use 1.

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> ref = FeatureBatch(np.zeros((2, 3)), logits=np.array([[5.0, 0.0], [0.0, 5.0]]))
    >>> det = EnergyDetector().fit(ref)
    >>> det.score(FeatureBatch(np.zeros((1, 3)), logits=np.array([[0.0, 0.0]]))).round(4)
    array([-0.6931])

    References
    ----------
    Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    """

    name = "energy"

    def score_logits(self, logits: np.ndarray) -> np.ndarray:
        t = self.temperature
        return -t * logsumexp(logits / t, axis=1)
