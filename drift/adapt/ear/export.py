"""EAR as one model: ``forward(x) -> (features, logits)`` with the routing inside.

The nightly path loads the exported ``.pt2`` like any other model, so detectors,
calibration and the gate see the adapted model with no special case. Rolling a
domain back = :meth:`EARModel.remove_domain` and exporting again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from drift.adapt.models import export_module

if TYPE_CHECKING:
    from drift.adapt.ear.model import EARModel

#: ``model(x) -> (features, logits)``: the frozen deployed model (encoder + original head).
FrozenModel = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class EARModule(nn.Module):
    """Frozen model + adaptors + router as one ``nn.Module``.

    Each row's logits come from the head of its highest-scoring domain: domain 0
    (the default) is the frozen model's own head, bit for bit; domain ``d`` is
    ``adaptors[d - 1](features)``. Features are the frozen model's, unchanged.
    Every head runs on every row and the chosen one is gathered, so the graph has
    no data-dependent shapes and exports with a dynamic batch dimension.
    """

    def __init__(self, model: FrozenModel, adaptors: Sequence[nn.Module], router: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.adaptors = nn.ModuleList(adaptors)
        self.router = router

    def routes(self, x: torch.Tensor) -> torch.Tensor:
        """int64 (n,) domain of each row."""
        features, logits = self.model(x)
        return self.router(x, features, logits).argmax(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.model(x)
        domain = self.router(x, features, logits).argmax(dim=1)
        heads = torch.stack([logits, *(adaptor(features) for adaptor in self.adaptors)], dim=1)
        index = domain[:, None, None].expand(-1, 1, heads.shape[2])
        return features, heads.gather(1, index).squeeze(1)


def export_ear(
    ear: EARModel, path: str | os.PathLike, example_input: torch.Tensor | None = None
) -> Path:
    """Export ``ear`` as one ``.pt2`` (see :func:`drift.adapt.export_module`), atomically.

    The frozen model must be an ``nn.Module`` that ``torch.export`` can trace (eager,
    or loaded from a ``.pt2``). ``example_input`` (at least 2 rows) defaults to two
    stored rows of the original domain.
    """
    if example_input is None:
        example_input = ear.domain_rows_[0].inputs[:2]
    return export_module(ear.module(), example_input, path)
