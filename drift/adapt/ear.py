"""EAR: frozen Encoder, shallow Adaptors chosen by zero-shot NAS, and a Reconfigurator.

Daniels, Hu, Lomnitz, Miller, Raghavan, Zhang, Piacentino, Zhang, "Efficient Model
Adaptation for Continual Learning at the Edge", arXiv 2308.02084 (SRI). The abstract
fixes the three parts: a frozen DNN feature encoder; OOD detection by combining its
features with hyperdimensional computing (HDC); low-parameter adaptors found by
zero-shot NAS; and reconfigurators that route data through the right adaptor for
domain-incremental learning. No EAR code or full text was available (``docs/methods.md``
§5.2), so the following choices are a **reconstruction**:

* HDC = the HDFF detector (Wilson et al., WACV 2023), :class:`drift.detectors.hdc.HDCDetector`,
  on the encoder's features (single layer);
* candidate adaptors = ReLU MLP heads on the features (:class:`AdaptorSpec`);
* zero-shot proxy = NASWOT (Mellor et al., ICML 2021), :func:`naswot_score`;
* reconfigurator = per-row routing to the domain whose hypervectors are nearest by
  cosine: ``routing="class"`` compares a row with every domain's class hypervectors
  (the domain of the best class wins), ``routing="domain"`` with each domain's single
  bundled domain hypervector. Domain 0 is the original domain, served by the
  model's own, untouched classifier head;
* the original domain's similarity gets the smallest bonus that keeps a fraction
  ``original_keep`` of its own reference rows on the original head (recalibrated
  after each new domain). Rows of the original domain sit near the centre of the
  hyperspace, where cosine is a poor guide; without the bonus about 10 % of clean
  digits are misrouted to an adaptor, which is exactly the forgetting EAR must avoid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from drift.adapt._artifact import atomic_folder, read_meta
from drift.batch import FeatureBatch
from drift.detectors.hdc import HDCDetector
from drift.params import ParamsMixin

#: ``model(x) -> (features, logits)``: the frozen deployed model (encoder + original head).
FrozenModel = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

_ADAPTORS_FILE = "adaptors.safetensors"
_HDC_FOLDER = "hdc"
_MAX_REFERENCE_ROWS = 2048


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
    (32,), (64,), (128,), (256,), (32, 32), (64, 64), (128, 128),
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


class EARModel(ParamsMixin):
    """Frozen model + per-domain adaptors + HDC routing, grown one domain at a time.

    **Reconstruction** of EAR (Daniels et al., arXiv 2308.02084); see the module
    docstring. :meth:`fit` registers the original domain (served by the model's own
    head); each :meth:`add_domain` ranks the candidate adaptors by :func:`naswot_score`
    on the new domain's features, trains the best one (within ``max_params``) on the
    domain's labelled rows, and adds the domain's hypervectors to the router. Neither
    the encoder nor the original head is ever trained, so rows routed to domain 0
    get exactly the original logits: forgetting can only come from misrouting.

    Domain-incremental only: every domain uses the original label set.

    Parameters
    ----------
    model
        frozen ``model(x) -> (features, logits)``; an ``nn.Module`` or any callable
        (e.g. ``torch.export.load(path).module()``).
    candidates
        hidden-layer widths of the candidate adaptors (see :class:`AdaptorSpec`).
    max_params
        parameter budget of an adaptor; the best-scoring candidate within it wins
        (None = no budget).
    routing
        ``"class"`` (nearest class hypervector of any domain) or ``"domain"``
        (nearest bundled domain hypervector).
    original_keep
        fraction in (0, 1] of the original domain's reference rows that must stay
        routed to it (see the module docstring); None = plain nearest hypervector.
    hdc_dim
        hypervector dimension of the HDC detector.
    proxy_rows
        rows of the new domain the proxy is computed on.
    epochs, lr, weight_decay
        full-batch Adam training of a chosen adaptor.
    seed
        seeds the projection, proxy row sample, adaptor initialisation.

    Attributes
    ----------
    domain_names_ : list of str
        ``domain_names_[d]`` names domain ``d``; domain 0 is the original.
    adaptors_ : list of nn.Sequential
        ``adaptors_[d - 1]`` serves domain ``d``.
    adaptor_specs_ : list of AdaptorSpec
    proxy_scores_ : list of dict
        per added domain, the NASWOT score of each candidate (keyed by its widths).
    hdc_ : HDCDetector
        shared projection; its class ids are ``domain * n_classes_ + label``.
    domain_vectors_ : ndarray (n_domains, D)
        unit bundled hypervector of each domain's rows.
    reference_features_ : Tensor (m, d)
        up to ``_MAX_REFERENCE_ROWS`` original-domain feature rows, to calibrate
        ``original_bonus_``.
    original_bonus_ : float
        added to the original domain's similarity when routing.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> class Frozen(nn.Module):
    ...     def forward(self, x):
    ...         return x, x[:, :2] - x[:, 2:4]
    >>> x = rng.normal(size=(200, 6)).astype(np.float32)
    >>> y = (x[:, 0] - x[:, 2] < x[:, 1] - x[:, 3]).astype(np.int64)
    >>> shifted = x + np.float32(8.0) * np.eye(6, dtype=np.float32)[5]  # a new domain
    >>> ear = EARModel(Frozen(), hdc_dim=256, epochs=50).fit(x, y)
    >>> ear = ear.add_domain(shifted, y, "shifted")
    >>> ear.domain_names_, float((ear.route(shifted) == 1).mean()), float((ear.route(x) == 0).mean())
    (['original', 'shifted'], 0.96, 0.99)
    >>> original = ear.route(x) == 0  # rows kept on the original head get its exact logits
    >>> bool(np.array_equal(ear.predict(x)[original], Frozen()(torch.as_tensor(x[original]))[1].numpy()))
    True

    References
    ----------
    Daniels et al., "Efficient Model Adaptation for Continual Learning at the Edge",
    arXiv 2308.02084. Wilson, Fischer, Sünderhauf, Dayoub, "Hyperdimensional Feature
    Fusion for Out-of-Distribution Detection", WACV 2023. Mellor et al., "Neural
    Architecture Search without Training", ICML 2021.
    """

    kind = "ear"

    def __init__(
        self,
        model: FrozenModel,
        candidates: Sequence[tuple[int, ...]] = DEFAULT_CANDIDATES,
        max_params: int | None = None,
        routing: str = "class",
        original_keep: float | None = 0.99,
        hdc_dim: int = 4096,
        proxy_rows: int = 32,
        epochs: int = 200,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ):
        self.model = model
        self.candidates = candidates
        self.max_params = max_params
        self.routing = routing
        self.original_keep = original_keep
        self.hdc_dim = hdc_dim
        self.proxy_rows = proxy_rows
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed

    # -- the frozen model ---------------------------------------------------------
    def _forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            features, logits = self.model(torch.as_tensor(np.asarray(x), dtype=torch.float32))
        return features.detach(), logits.detach()

    # -- growing ------------------------------------------------------------------
    def fit(self, x: Any, y: Any) -> Self:
        """Register the original domain (rows ``x``, labels ``y``) as domain 0."""
        if self.routing not in ("class", "domain"):
            raise ValueError(f"EARModel: routing must be 'class' or 'domain', got {self.routing!r}")
        features, logits = self._forward(x)
        self.n_classes_ = int(logits.shape[1])
        self.hdc_ = HDCDetector(dim=self.hdc_dim, seed=self.seed).fit(
            FeatureBatch(features.numpy(), labels=self._check_labels(y))
        )
        self.domain_names_ = ["original"]
        self.adaptors_: list[nn.Sequential] = []
        self.adaptor_specs_: list[AdaptorSpec] = []
        self.proxy_scores_: list[dict[str, float]] = []
        self.domain_vectors_ = self.hdc_.domain_hypervector(FeatureBatch(features.numpy()))[None]
        rows = np.random.default_rng(self.seed).permutation(len(features))[:_MAX_REFERENCE_ROWS]
        self.reference_features_ = features[np.sort(rows)]
        self.original_bonus_ = 0.0
        return self

    def add_domain(self, x: Any, y: Any, name: str) -> Self:
        """Choose, train and register an adaptor for a new domain's labelled rows."""
        self._check_fitted()
        labels = self._check_labels(y)
        features, _ = self._forward(x)
        domain = len(self.domain_names_)
        specs, scores = self.rank_candidates(features)
        eligible = [s for s in specs if self._within_budget(s, features)]
        if not eligible:
            raise ValueError(f"EARModel: no candidate adaptor within max_params={self.max_params}")
        spec = eligible[0]
        adaptor = self._train(spec, features, torch.as_tensor(labels), domain)
        batch = FeatureBatch(features.numpy(), labels=labels + domain * self.n_classes_)
        self.hdc_.partial_fit(batch)
        self.domain_vectors_ = np.vstack([self.domain_vectors_, self.hdc_.domain_hypervector(batch)])
        self.domain_names_.append(name)
        self.adaptors_.append(adaptor)
        self.adaptor_specs_.append(spec)
        self.proxy_scores_.append({_key(s): v for s, v in zip(specs, scores, strict=True)})
        self.original_bonus_ = self._calibrate_bonus()
        return self

    def _calibrate_bonus(self) -> float:
        """Smallest bonus keeping ``original_keep`` of the original reference rows on domain 0."""
        if self.original_keep is None:
            return 0.0
        similarities = self._domain_similarities(self.reference_features_)
        lead_of_best_new = similarities[:, 1:].max(axis=1) - similarities[:, 0]
        return max(0.0, float(np.quantile(lead_of_best_new, self.original_keep)))

    def rank_candidates(self, features: torch.Tensor) -> tuple[list[AdaptorSpec], list[float]]:
        """Candidates sorted by NASWOT score on (up to ``proxy_rows`` of) ``features``, best first.

        Deterministic: the row sample and each candidate's initialisation are seeded.
        Ties keep the order of ``candidates``.
        """
        rows = np.random.default_rng(self.seed).permutation(len(features))[: self.proxy_rows]
        specs = [AdaptorSpec(tuple(hidden)) for hidden in self.candidates]
        scores = []
        for spec in specs:
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                network = spec.build(features.shape[1], self.n_classes_)
            scores.append(naswot_score(network, features[rows]))
        order = sorted(range(len(specs)), key=lambda i: -scores[i])
        return [specs[i] for i in order], [scores[i] for i in order]

    def _within_budget(self, spec: AdaptorSpec, features: torch.Tensor) -> bool:
        return self.max_params is None or spec.n_params(features.shape[1], self.n_classes_) <= self.max_params

    def _train(self, spec: AdaptorSpec, features: torch.Tensor, labels: torch.Tensor, domain: int) -> nn.Sequential:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + domain)
            adaptor = spec.build(features.shape[1], self.n_classes_)
        optimiser = torch.optim.Adam(adaptor.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            loss = nn.functional.cross_entropy(adaptor(features), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return adaptor.eval().requires_grad_(False)

    # -- inference ----------------------------------------------------------------
    def route(self, x: Any) -> np.ndarray:
        """int (n,) domain index of each row (0 = original domain, original head)."""
        self._check_fitted()
        return self._route_features(self._forward(x)[0])

    def _route_features(self, features: torch.Tensor) -> np.ndarray:
        similarities = self._domain_similarities(features)
        similarities[:, 0] += self.original_bonus_
        return similarities.argmax(axis=1)

    def _domain_similarities(self, features: torch.Tensor) -> np.ndarray:
        """(n, n_domains) cosine similarity of each row to each domain (per ``routing``)."""
        batch = FeatureBatch(features.numpy())
        if self.routing == "domain":
            rows = self.hdc_.hypervectors(batch.features)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True) + 1e-12
            return rows @ self.domain_vectors_.T
        similarities = self.hdc_.class_similarities(batch)
        class_domain = self.hdc_.classes_ // self.n_classes_
        return np.stack(
            [similarities[:, class_domain == d].max(axis=1) for d in range(len(self.domain_names_))],
            axis=1,
        )

    def predict(self, x: Any) -> np.ndarray:
        """float32 (n, n_classes) logits, each row from the head of the domain it is routed to."""
        self._check_fitted()
        features, logits = self._forward(x)
        domains = self._route_features(features)
        out = logits.clone()
        with torch.no_grad():
            for d, adaptor in enumerate(self.adaptors_, start=1):
                rows = torch.as_tensor(np.flatnonzero(domains == d))
                if len(rows):
                    out[rows] = adaptor(features[rows])
        return out.numpy()

    def ood_score(self, x: Any) -> np.ndarray:
        """float64 (n,) HDC OOD score against all known domains' classes: higher = more OOD."""
        self._check_fitted()
        return self.hdc_.score(FeatureBatch(self._forward(x)[0].numpy()))

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write everything but the frozen model to the folder ``path`` (no pickle), atomically."""
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k != "model"}
        params["candidates"] = [list(c) for c in self.candidates]
        meta = {
            "params": params,
            "n_classes_": self.n_classes_,
            "domain_names_": self.domain_names_,
            "adaptor_specs_": [list(s.hidden) for s in self.adaptor_specs_],
            "proxy_scores_": self.proxy_scores_,
            "original_bonus_": self.original_bonus_,
        }
        with atomic_folder(path, self.kind, meta) as tmp:
            self.hdc_.save(tmp / _HDC_FOLDER)
            tensors = {
                "domain_vectors_": torch.as_tensor(self.domain_vectors_),
                "reference_features_": self.reference_features_.contiguous(),
            }
            for d, adaptor in enumerate(self.adaptors_, start=1):
                tensors |= {f"{d}.{k}": v.contiguous() for k, v in adaptor.state_dict().items()}
            save_file(tensors, str(tmp / _ADAPTORS_FILE))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: FrozenModel) -> EARModel:
        """Load an EAR model saved by :meth:`save` around the same frozen ``model``."""
        meta = read_meta(path, cls.kind)
        params = meta["params"] | {"candidates": tuple(tuple(c) for c in meta["params"]["candidates"])}
        ear = cls(model, **params)
        ear.n_classes_ = meta["n_classes_"]
        ear.domain_names_ = meta["domain_names_"]
        ear.proxy_scores_ = meta["proxy_scores_"]
        ear.adaptor_specs_ = [AdaptorSpec(tuple(h)) for h in meta["adaptor_specs_"]]
        ear.hdc_ = HDCDetector.load(Path(path) / _HDC_FOLDER)
        tensors = load_file(str(Path(path) / _ADAPTORS_FILE))
        ear.domain_vectors_ = tensors.pop("domain_vectors_").numpy()
        ear.reference_features_ = tensors.pop("reference_features_")
        ear.original_bonus_ = meta["original_bonus_"]
        in_dim = ear.hdc_.projection_.shape[0]
        ear.adaptors_ = []
        for d, spec in enumerate(ear.adaptor_specs_, start=1):
            adaptor = spec.build(in_dim, ear.n_classes_)
            prefix = f"{d}."
            adaptor.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            ear.adaptors_.append(adaptor.eval().requires_grad_(False))
        return ear

    # -- checks -------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "hdc_"):
            raise RuntimeError("EARModel: call fit() or load() first")

    def _check_labels(self, y: Any) -> np.ndarray:
        labels = np.asarray(y, dtype=np.int64)
        n_classes = getattr(self, "n_classes_", None)
        if n_classes is not None and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"EARModel: labels must be in 0..{n_classes - 1} (domain-incremental only)")
        return labels


def _key(spec: AdaptorSpec) -> str:
    return "x".join(str(w) for w in spec.hidden)
