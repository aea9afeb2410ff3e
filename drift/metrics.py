"""OOD detection metrics on scores where **higher = more OOD**.

AUROC and AUPR treat OOD rows as the positive class. FPR95 follows the OOD
literature's wording ("FPR at 95% TPR", ID = positive): it is the fraction of
OOD rows **not flagged** when the threshold leaves 95% of ID rows unflagged.
One implementation (scikit-learn ``roc_curve``, first operating point whose TPR
reaches the target) is used everywhere, as docs/methods.md §6 explains.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _labelled(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated scores and labels (1 = OOD)."""
    id_scores = np.asarray(id_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    if len(id_scores) == 0 or len(ood_scores) == 0:
        raise ValueError("need at least one ID and one OOD score")
    labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    return np.concatenate([id_scores, ood_scores]), labels


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under the ROC curve, OOD = positive: P(OOD row scores above an ID row).

    Examples
    --------
    >>> auroc([0.1, 0.2, 0.3], [0.25, 0.9])
    0.8333333333333334
    """
    scores, labels = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under the precision–recall curve with OOD as the positive class ("AUPR-out"),
    computed as average precision.

    Examples
    --------
    >>> aupr([0.1, 0.2], [0.8, 0.9])
    1.0
    """
    scores, labels = _labelled(id_scores, ood_scores)
    return float(average_precision_score(labels, scores))


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    """FPR at ``tpr`` TPR, ID = positive: the fraction of OOD rows left unflagged when
    the threshold keeps (at least) ``tpr`` of ID rows unflagged.

    A row is *unflagged* when its score is at or below the threshold. The threshold is
    the first operating point of scikit-learn's ``roc_curve`` (on ``-score``, ID
    positive) whose true-positive rate reaches ``tpr``.

    Examples
    --------
    >>> id_scores = np.arange(100) / 100          # ID rows: 0.00 .. 0.99
    >>> fpr_at_tpr(id_scores, [0.5, 0.95, 2.0])   # 95% of ID kept at threshold 0.94
    0.3333333333333333
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    scores, is_ood = _labelled(id_scores, ood_scores)
    # drop_intermediate=False: a dropped collinear point could be the first one reaching tpr
    false_pos, true_pos, _ = roc_curve(1 - is_ood, -scores, drop_intermediate=False)
    # roc_curve's TPR is non-decreasing, so searchsorted finds the first point ≥ tpr
    return float(false_pos[np.searchsorted(true_pos, tpr, side="left")])
