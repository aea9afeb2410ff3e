"""EAR's reconfigurator: scores each row against every domain; the best domain's head serves it.

A router is an ``nn.Module`` ``router(x, features, logits) -> (n, n_domains)`` scores,
so the same code routes in :class:`~drift.adapt.ear.model.EARModel` and inside the
exported one-file model. Domain 0 is the original domain; ``offset_`` adds the
calibrated bonus that keeps it the default (:func:`calibrate_original_bonus`).

* :class:`LearnedRouter` (default): multinomial logistic regression on several
  standardised layers — the raw input, the penultimate features and the
  log-softmax of the logits — trained class-balanced on the stored rows of
  *every* domain, retrained whenever a domain is added or removed (rehearsal: an
  earlier domain's rows keep their weight however many domains follow).
* :class:`HDCRouter` (ablation, the first reconstruction): cosine of a row's
  hypervector to each domain's class hypervectors (``"class"``) or to each domain's
  bundled hypervector (``"domain"``), on the penultimate features only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from drift.batch import FeatureBatch
from drift.detectors.hdc import HDCDetector

#: Layers the learned router reads, in this order.
ROUTER_LAYERS: tuple[str, ...] = ("input", "features", "logits")


@dataclass
class DomainRows:
    """Stored labelled rows of one domain: what routers are (re)trained on."""

    inputs: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def layer_rows(
    layers: Sequence[str], x: torch.Tensor, features: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """(n, width) concatenation of the named layers of each row."""
    parts = {
        "input": x.flatten(1),
        "features": features,
        "logits": torch.log_softmax(logits, dim=1),
    }
    return torch.cat([parts[name] for name in layers], dim=1)


class LearnedRouter(nn.Module):
    """Logistic regression from standardised layers to the domain; see the module docstring.

    Build it with :meth:`train_on`; the constructor takes fitted tensors (loading).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> rows = [DomainRows(torch.randn(50, 4, generator=g) + 3 * d, torch.zeros(50, 2),
    ...                    torch.zeros(50, 3), torch.zeros(50, dtype=torch.int64)) for d in range(2)]
    >>> router = LearnedRouter.train_on(rows, layers=("input",), l2=1e-3)
    >>> router(rows[1].inputs, rows[1].features, rows[1].logits).argmax(1).float().mean().item()
    1.0
    """

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    offset_: torch.Tensor

    def __init__(
        self,
        layers: Sequence[str],
        mean: torch.Tensor,
        scale: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        offset_: torch.Tensor,
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        for name, value in (
            ("mean", mean),
            ("scale", scale),
            ("weight", weight),
            ("bias", bias),
            ("offset_", offset_),
        ):
            self.register_buffer(name, value.detach().float().clone())

    @classmethod
    def train_on(
        cls, domains: Sequence[DomainRows], layers: Sequence[str], l2: float, max_iter: int = 200
    ) -> LearnedRouter:
        """Full-batch L-BFGS on the rows of ``domains`` (domain index = position), class-balanced."""
        inputs = torch.cat([layer_rows(layers, d.inputs, d.features, d.logits) for d in domains])
        targets = torch.cat([torch.full((len(d),), i) for i, d in enumerate(domains)])
        mean, scale = inputs.mean(0), inputs.std(0).clamp_min(1e-6)
        z = (inputs - mean) / scale
        weight = torch.zeros(len(domains), z.shape[1], requires_grad=True)
        bias = torch.zeros(len(domains), requires_grad=True)
        if len(domains) > 1:
            counts = torch.bincount(targets).float()
            balance = len(targets) / (len(domains) * counts)
            optimiser = torch.optim.LBFGS(
                [weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe"
            )

            def closure() -> torch.Tensor:
                optimiser.zero_grad()
                loss = nn.functional.cross_entropy(z @ weight.T + bias, targets, weight=balance)
                loss = loss + l2 * weight.square().sum()
                loss.backward()
                return loss

            optimiser.step(closure)
        return cls(layers, mean, scale, weight, bias, torch.zeros(len(domains)))

    def forward(
        self, x: torch.Tensor, features: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        z = (layer_rows(self.layers, x, features, logits) - self.mean) / self.scale
        return z @ self.weight.T + self.bias + self.offset_


class HDCRouter(nn.Module):
    """Cosine to HDC hypervectors on the penultimate features; see the module docstring.

    ``class_domains[c]`` is the domain of class hypervector ``c``.
    """

    projection: torch.Tensor
    centre: torch.Tensor
    class_vectors: torch.Tensor
    class_domains: torch.Tensor
    members: torch.Tensor
    domain_vectors: torch.Tensor
    offset_: torch.Tensor

    def __init__(
        self,
        by: str,
        projection: torch.Tensor,
        centre: torch.Tensor,
        class_vectors: torch.Tensor,
        class_domains: torch.Tensor,
        domain_vectors: torch.Tensor,
        offset_: torch.Tensor,
    ) -> None:
        super().__init__()
        if by not in ("class", "domain"):
            raise ValueError(f"HDCRouter: by must be 'class' or 'domain', got {by!r}")
        self.by = by
        for name, value in (
            ("projection", projection),
            ("centre", centre),
            ("class_vectors", class_vectors),
            ("domain_vectors", domain_vectors),
            ("offset_", offset_),
        ):
            self.register_buffer(name, value.detach().float().clone())
        self.register_buffer("class_domains", class_domains.detach().long().clone())
        # (n_domains, C): which class hypervectors belong to each domain; a buffer, not
        # built in forward, so the exported graph holds no device-bound constant
        n_domains = len(offset_)
        members = self.class_domains[None, :] == torch.arange(n_domains)[:, None]
        self.register_buffer("members", members, persistent=False)

    @classmethod
    def from_hdc(
        cls, by: str, hdc: HDCDetector, domains: Sequence[DomainRows], n_classes: int
    ) -> HDCRouter:
        """Router over the class hypervectors of ``hdc`` (class id = domain · n_classes + label)."""
        class_vectors = hdc.class_vectors_ / (
            np.linalg.norm(hdc.class_vectors_, axis=1, keepdims=True) + 1e-12
        )
        domain_vectors = np.stack(
            [hdc.domain_hypervector(FeatureBatch(d.features.numpy())) for d in domains]
        )
        return cls(
            by,
            torch.as_tensor(hdc.projection_),
            torch.tensor(hdc.centre_),
            torch.as_tensor(class_vectors),
            torch.as_tensor(hdc.classes_ // n_classes),
            torch.as_tensor(domain_vectors),
            torch.zeros(len(domains)),
        )

    def forward(
        self, x: torch.Tensor, features: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        vectors = (features - self.centre) @ self.projection
        vectors = vectors / (vectors.norm(dim=1, keepdim=True) + 1e-12)
        if self.by == "domain":
            return vectors @ self.domain_vectors.T + self.offset_
        similarities = vectors @ self.class_vectors.T
        per_domain = similarities[:, None, :].masked_fill(~self.members, float("-inf")).amax(dim=2)
        return per_domain + self.offset_


Router = LearnedRouter | HDCRouter


def calibrate_original_bonus(router: Router, original: DomainRows, keep: float | None) -> float:
    """Set ``router.offset_[0]`` to the smallest bonus keeping ``keep`` of ``original`` on domain 0.

    Without it rows of the original domain that look a little like a new domain
    would leave the untouched original head, which is the forgetting EAR must avoid.
    ``keep=None``: no bonus (plain highest score).
    """
    router.offset_.zero_()
    if keep is None or router.offset_.shape[0] < 2:
        return 0.0
    with torch.no_grad():
        scores = router(original.inputs, original.features, original.logits)
    lead_of_best_new = (scores[:, 1:].max(dim=1).values - scores[:, 0]).double().numpy()
    bonus = max(0.0, float(np.quantile(lead_of_best_new, keep)))
    router.offset_[0] = bonus
    return bonus
