"""Sequential evidence on nightly flag counts: a binomial CUSUM and its alarm level (docs/methods.md §3.6)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np

#: a count or an array of counts: the increment is the same formula for both
ArrayOrFloat = TypeVar("ArrayOrFloat", float, np.ndarray)


@dataclass(frozen=True)
class BinomialCusum:
    """Page's CUSUM on nightly flag counts: in-control rate ``p0``, out-of-control ``p1``.

    Increment z = k ln(p1/p0) + (n - k) ln((1 - p1)/(1 - p0)) (the log-likelihood
    ratio of the night's count); S_t = max(0, S_{t-1} + z_t); alarm when
    S_t > ``threshold``. The sum is in nats of evidence, so nights of different
    sizes add up correctly; the threshold comes from :func:`cusum_threshold`.

    Examples
    --------
    >>> cusum = BinomialCusum(p0=0.05, p1=0.10, threshold=5.0)
    >>> round(cusum.increment(n_flagged=10, n_rows=200), 2)
    -3.34
    >>> s = cusum.update(0.0, n_flagged=25, n_rows=200); round(s, 2)
    7.87
    >>> cusum.alarm(s)
    True
    """

    p0: float
    p1: float
    threshold: float = math.inf

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < self.p1 < 1.0:
            raise ValueError(f"BinomialCusum: need 0 < p0 < p1 < 1, got p0={self.p0}, p1={self.p1}")

    def increment(self, n_flagged: ArrayOrFloat, n_rows: float) -> ArrayOrFloat:
        """The log-likelihood-ratio step of a night (or of an array of nights)."""
        up = math.log(self.p1 / self.p0)
        down = math.log((1.0 - self.p1) / (1.0 - self.p0))
        return n_flagged * up + (n_rows - n_flagged) * down

    def update(self, previous: float, n_flagged: int, n_rows: int) -> float:
        return max(0.0, previous + self.increment(n_flagged, n_rows))

    def alarm(self, statistic: float) -> bool:
        return statistic > self.threshold


def round_rows(n_rows: int) -> int:
    """``n_rows`` to two significant digits: the grid on which CUSUM thresholds are cached.

    Examples
    --------
    >>> round_rows(1234), round_rows(50_000), round_rows(87)
    (1200, 50000, 87)
    """
    digits = max(len(str(int(n_rows))) - 2, 0)
    return max(1, int(round(n_rows, -digits)))


@lru_cache(maxsize=256)
def cusum_threshold(
    arl0_nights: float,
    n_rows: int,
    p0: float,
    p1: float,
    n_calibration: int,
    expected_rate: float | None = None,
    n_streams: int = 1000,
    n_nights: int = 3000,
    seed: int = 0,
) -> float:
    """Alarm level h of a :class:`BinomialCusum` for one false alarm per ``arl0_nights``.

    Simulated under the beta-binomial null: each of ``n_streams`` streams draws
    its true ID flag rate U ~ Beta(K, m - K + 1) once (one calibration set
    serves a stream for its whole life) and then ``n_nights`` counts
    Binomial(``n_rows``, U). K = ``expected_rate`` (m + 1); ``expected_rate``
    defaults to ``p0``, but the CUSUM's ``p0`` may be set above it (an upper
    quantile of U, as :mod:`drift.gate` does) so that an unlucky calibration
    set does not keep it near its alarm level. h is the smallest level whose alarm rate per
    night, restarting after each alarm, is <= 1 / ``arl0_nights``; found by
    bisection on common random numbers, so it is deterministic for a seed.
    Vectorised over streams; cached per argument tuple.

    Nightly sizes vary: pass the night's own size rounded with :func:`round_rows`
    (that is what :mod:`drift.gate` does), so the level matches the night being
    judged and the cache stays small. When calibration is too small for the
    batch size (m ≪ n), a stream whose U lies above the CUSUM's reference value
    alarms every night whatever h is; then the target cannot be met and the
    largest h searched is returned — fit calibration on more rows.

    Examples
    --------
    >>> h = cusum_threshold(365, n_rows=200, p0=0.05, p1=0.10, n_calibration=1999,
    ...                     n_streams=300, n_nights=1500)
    >>> 2.0 < h < 10.0
    True
    """
    k = round((p0 if expected_rate is None else expected_rate) * (n_calibration + 1))
    rng = np.random.default_rng(seed)
    rates = rng.beta(k, n_calibration - k + 1, size=n_streams)
    counts = rng.binomial(n_rows, rates[:, None], size=(n_streams, n_nights))
    increments = BinomialCusum(p0, p1).increment(counts, n_rows)
    target = 1.0 / arl0_nights

    def alarm_rate(h: float) -> float:
        s = np.zeros(n_streams)
        alarms = 0
        for night in range(n_nights):
            s = np.maximum(0.0, s + increments[:, night])
            fired = s > h
            alarms += int(fired.sum())
            s[fired] = 0.0  # restart after an alarm, as the gate does
        return alarms / (n_streams * n_nights)

    low, high = 0.0, max(1.0, float(increments.max(initial=0.0)))
    for _ in range(8):  # bracket: grow h until the target is met, or give up
        if alarm_rate(high) <= target:
            break
        low, high = high, 2.0 * high
    else:
        return high
    for _ in range(30):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if alarm_rate(middle) > target else (low, middle)
        if high - low < 1e-3 * high:
            break
    return high
