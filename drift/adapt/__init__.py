"""Adaptation to confirmed shifts (docs/methods.md §5): MOL few-shot re-adaptation and EAR growth.

* :class:`MetaOODLearner` — meta-learned initialisation, adapted from scratch each
  night in a few SGD steps on the night's feedback-labelled rows (MOL, reconstructed).
* :class:`EARModel` — frozen model + per-domain adaptors chosen by a zero-shot NAS
  proxy + a learned router (EAR, reconstructed); :func:`export_ear` writes it as one
  ``.pt2`` with the routing inside.
* :func:`trainable_module` / :func:`export_module` — the deployed model as a
  trainable ``nn.Module`` and back to a ``torch.export`` program.
"""

from drift.adapt._artifact import AdaptFileError
from drift.adapt.ear import (
    DEFAULT_CANDIDATES,
    AdaptorSpec,
    EARModel,
    EARModule,
    export_ear,
    naswot_score,
)
from drift.adapt.models import export_module, trainable_module
from drift.adapt.mol import (
    EnergyMarginLoss,
    MetaOODLearner,
    ShiftFn,
    energy,
    fine_tune,
    logits_of,
    mixed_outliers,
)
from drift.adapt.shifts import gaussian_noise

__all__ = [
    "DEFAULT_CANDIDATES",
    "AdaptFileError",
    "AdaptorSpec",
    "EARModel",
    "EARModule",
    "EnergyMarginLoss",
    "MetaOODLearner",
    "ShiftFn",
    "energy",
    "export_ear",
    "export_module",
    "fine_tune",
    "gaussian_noise",
    "logits_of",
    "mixed_outliers",
    "naswot_score",
    "trainable_module",
]
