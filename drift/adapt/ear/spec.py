"""EAR's adaptor search space and its zero-shot NAS proxy (NASWOT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AdaptorSpec:
    """A shallow adaptor architecture: ReLU MLP with ``hidden`` widths, features → logits.

    Examples
    --------
    >>> spec = AdaptorSpec((32, 16))
    >>> spec.build(in_dim=8, n_classes=3)
    Sequential(
      (0): Linear(in_features=8, out_features=32, bias=True)
      (1): ReLU()
      (2): Linear(in_features=32, out_features=16, bias=True)
      (3): ReLU()
      (4): Linear(in_features=16, out_features=3, bias=True)
    )
    >>> spec.n_params(in_dim=8, n_classes=3)
    867
    """

    hidden: tuple[int, ...]

    def build(self, in_dim: int, n_classes: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for width in self.hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        return nn.Sequential(*layers, nn.Linear(in_dim, n_classes))

    def n_params(self, in_dim: int, n_classes: int) -> int:
        widths = (in_dim, *self.hidden, n_classes)
        return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


#: Default search space: one or two hidden layers of 32..256 units.
DEFAULT_CANDIDATES: tuple[tuple[int, ...], ...] = (
    (32,),
    (64,),
    (128,),
    (256,),
    (32, 32),
    (64, 64),
    (128, 128),
)


def naswot_score(network: nn.Sequential, features: torch.Tensor) -> float:
    r"""NASWOT: log-determinant of the binary activation-pattern kernel at initialisation.

    Each row's code :math:`c_i \in \{0,1\}^{N_A}` records which of the network's
    :math:`N_A` ReLU units are active. :math:`K_{ij} = N_A - \mathrm{Hamming}(c_i, c_j)`
    (the number of units on which rows *i* and *j* agree), and the score is
    :math:`\log|\det K|`: higher when the untrained network already separates the
    rows into distinct linear regions. Training-free and label-free. A singular
    kernel (two rows with identical codes, or fewer units than rows) scores −inf.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> x = torch.randn(16, 8)
    >>> narrow, wide = AdaptorSpec((4,)).build(8, 2), AdaptorSpec((64,)).build(8, 2)
    >>> naswot_score(narrow, x), naswot_score(wide, x) > 0
    (-inf, True)

    References
    ----------
    Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without
    Training", ICML 2021.
    """
    codes = []
    with torch.no_grad():
        hidden = features
        for layer in network:
            hidden = layer(hidden)
            if isinstance(layer, nn.ReLU):
                codes.append((hidden > 0).double())
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")
