"""Metrics against their plain definitions (higher score = more OOD)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.metrics import aupr, auroc, fpr_at_tpr

scores = st.lists(st.integers(-20, 20).map(lambda v: v / 4), min_size=1, max_size=60)


def pairwise_auroc(id_scores, ood_scores):
    """P(OOD > ID) + ½ P(tie), by counting all pairs."""
    i, o = np.asarray(id_scores)[:, None], np.asarray(ood_scores)[None, :]
    return float(((o > i).sum() + 0.5 * (o == i).sum()) / i.size / o.size)


def fpr_by_definition(id_scores, ood_scores, tpr):
    """Smallest threshold keeping ≥ tpr of ID rows at or below it; OOD fraction at or below it."""
    id_scores = np.sort(id_scores)
    kept = np.arange(1, len(id_scores) + 1) / len(id_scores)
    threshold = id_scores[np.argmax(kept >= tpr - 1e-12)]
    return float(np.mean(np.asarray(ood_scores) <= threshold))


@settings(max_examples=200, deadline=None)
@given(scores, scores, st.sampled_from([0.5, 0.9, 0.95, 1.0]))
def test_match_definitions(id_scores, ood_scores, tpr):
    assert auroc(id_scores, ood_scores) == pytest.approx(pairwise_auroc(id_scores, ood_scores))
    assert fpr_at_tpr(id_scores, ood_scores, tpr) == pytest.approx(
        fpr_by_definition(id_scores, ood_scores, tpr)
    )


def test_perfect_and_inverted_detectors():
    id_scores, ood_scores = np.arange(10.0), np.arange(10.0) + 100
    assert auroc(id_scores, ood_scores) == 1.0
    assert aupr(id_scores, ood_scores) == pytest.approx(1.0)
    assert fpr_at_tpr(id_scores, ood_scores) == 0.0
    assert auroc(ood_scores, id_scores) == 0.0
    assert fpr_at_tpr(ood_scores, id_scores) == 1.0


def test_aupr_is_ood_positive_average_precision():
    # OOD ranks 1st and 3rd: AP = (1/1 + 2/3) / 2
    assert aupr([0.5, 0.1], [0.9, 0.3]) == pytest.approx((1 + 2 / 3) / 2)


def test_rejects_empty_and_bad_tpr():
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([0.0], [1.0], tpr=0.0)
