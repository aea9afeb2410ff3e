"""EARModel: a frozen model grown one domain at a time with routed adaptors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from drift.adapt._artifact import atomic_folder, read_meta
from drift.adapt.ear.export import EARModule, FrozenModel
from drift.adapt.ear.routing import (
    ROUTER_LAYERS,
    DomainRows,
    HDCRouter,
    LearnedRouter,
    Router,
    calibrate_original_bonus,
)
from drift.adapt.ear.spec import DEFAULT_CANDIDATES, AdaptorSpec, naswot_score
from drift.batch import FeatureBatch
from drift.detectors.hdc import HDCDetector
from drift.params import ParamsMixin

_TENSORS_FILE = "adaptors.safetensors"
_HDC_FOLDER = "hdc"
#: rows stored per domain, for retraining the router (rehearsal) and calibrating the bonus
_MAX_DOMAIN_ROWS = 2048
_ROW_FIELDS = ("inputs", "features", "logits", "labels")
ROUTINGS = ("learned", "class", "domain")


class EARModel(ParamsMixin):
    """Frozen model + per-domain adaptors + a router, grown one domain at a time.

    **Reconstruction** of EAR (Daniels et al., arXiv 2308.02084); see
    :mod:`drift.adapt.ear`. :meth:`fit` registers the original domain (served by the
    model's own head); each :meth:`add_domain` ranks the candidate adaptors by
    :func:`naswot_score` on the new domain's features, trains the best one (within
    ``max_params``) on the domain's labelled rows, stores up to 2048 of its rows and
    retrains the router on the stored rows of every domain. Neither the encoder nor
    the original head nor an earlier adaptor is ever trained again, so rows routed
    to domain 0 get exactly the original logits and an earlier domain can only lose
    rows through misrouting. :meth:`remove_domain` drops a domain (rollback);
    :meth:`module` is the whole thing as one ``nn.Module`` for ``torch.export``.

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
        ``"learned"`` (:class:`~drift.adapt.ear.routing.LearnedRouter`), or the HDC
        ablations ``"class"`` (nearest class hypervector of any domain) and
        ``"domain"`` (nearest bundled domain hypervector).
    router_layers
        layers the learned router reads: any of ``"input"``, ``"features"``, ``"logits"``.
        The input is what lets it tell corruptions apart (``benchmarks/README.md``); for
        very wide inputs (images of 10⁵ pixels) drop it: the router's weights and the
        stored rows grow with the input width.
    router_l2
        L2 penalty of the learned router's weights.
    original_keep
        fraction in (0, 1] of the original domain's stored rows that must stay
        routed to it; None = no bonus for the original domain.
    hdc_dim
        hypervector dimension of the HDC detector (OOD score, HDC routing).
    proxy_rows
        rows of the new domain the proxy is computed on.
    epochs, lr, weight_decay
        full-batch Adam training of a chosen adaptor.
    seed
        seeds the projection, row samples, adaptor initialisation.

    Attributes
    ----------
    domain_names_ : list of str
        ``domain_names_[d]`` names domain ``d``; domain 0 is the original.
    adaptors_ : list of nn.Sequential
        ``adaptors_[d - 1]`` serves domain ``d``.
    adaptor_specs_ : list of AdaptorSpec
    proxy_scores_ : list of dict
        per added domain, the NASWOT score of each candidate (keyed by its widths).
    domain_rows_ : list of DomainRows
        up to 2048 stored rows of each domain.
    hdc_ : HDCDetector
        class hypervectors of every domain (class id ``domain * n_classes_ + label``).
    router_ : nn.Module
        ``router_(x, features, logits) -> (n, n_domains)`` scores.
    original_bonus_ : float
        added to the original domain's score when routing.

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
    (['original', 'shifted'], 1.0, 1.0)
    >>> original = ear.route(x) == 0  # rows kept on the original head get its exact logits
    >>> bool(np.array_equal(ear.predict(x)[original], Frozen()(torch.as_tensor(x[original]))[1].numpy()))
    True
    >>> ear.remove_domain("shifted").domain_names_
    ['original']

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
        routing: str = "learned",
        router_layers: Sequence[str] = ROUTER_LAYERS,
        router_l2: float = 1e-3,
        original_keep: float | None = 0.99,
        hdc_dim: int = 4096,
        proxy_rows: int = 32,
        epochs: int = 200,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.candidates = candidates
        self.max_params = max_params
        self.routing = routing
        self.router_layers = router_layers
        self.router_l2 = router_l2
        self.original_keep = original_keep
        self.hdc_dim = hdc_dim
        self.proxy_rows = proxy_rows
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed

    # -- the frozen model ---------------------------------------------------------
    def _forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        with torch.no_grad():
            features, logits = self.model(inputs)
        return inputs, features.detach(), logits.detach()

    def _domain_rows(self, x: Any, labels: np.ndarray, domain: int) -> DomainRows:
        inputs, features, logits = self._forward(x)
        rows = np.random.default_rng(self.seed + domain).permutation(len(inputs))[:_MAX_DOMAIN_ROWS]
        keep = torch.as_tensor(np.sort(rows))
        return DomainRows(inputs[keep], features[keep], logits[keep], torch.as_tensor(labels)[keep])

    # -- growing ------------------------------------------------------------------
    def fit(self, x: Any, y: Any) -> Self:
        """Register the original domain (rows ``x``, labels ``y``) as domain 0."""
        if self.routing not in ROUTINGS:
            raise ValueError(f"EARModel: routing must be one of {ROUTINGS}, got {self.routing!r}")
        unknown = set(self.router_layers) - set(ROUTER_LAYERS)
        if unknown or not self.router_layers:
            raise ValueError(
                f"EARModel: router_layers must be a non-empty subset of {ROUTER_LAYERS}"
            )
        inputs, _, logits = self._forward(x[:1])
        self.n_classes_ = int(logits.shape[1])
        self.domain_names_ = ["original"]
        self.domain_rows_ = [self._domain_rows(x, self._check_labels(y), 0)]
        self.adaptors_: list[nn.Sequential] = []
        self.adaptor_specs_: list[AdaptorSpec] = []
        self.proxy_scores_: list[dict[str, float]] = []
        self._rebuild_router()
        return self

    def add_domain(self, x: Any, y: Any, name: str) -> Self:
        """Choose, train and register an adaptor for a new domain's labelled rows."""
        self._check_fitted()
        if name in self.domain_names_:
            raise ValueError(f"EARModel: a domain named {name!r} exists already")
        labels = self._check_labels(y)
        _, features, _ = self._forward(x)
        domain = len(self.domain_names_)
        specs, scores = self.rank_candidates(features)
        eligible = [s for s in specs if self._within_budget(s, features)]
        if not eligible:
            raise ValueError(f"EARModel: no candidate adaptor within max_params={self.max_params}")
        spec = eligible[0]
        adaptor = self._train(spec, features, torch.as_tensor(labels), domain)
        self.domain_names_.append(name)
        self.domain_rows_.append(self._domain_rows(x, labels, domain))
        self.adaptors_.append(adaptor)
        self.adaptor_specs_.append(spec)
        self.proxy_scores_.append({_key(s): v for s, v in zip(specs, scores, strict=True)})
        self._rebuild_router()
        return self

    def remove_domain(self, name: str) -> Self:
        """Drop an added domain and its adaptor (rollback); the router is retrained without it."""
        self._check_fitted()
        if name not in self.domain_names_[1:]:
            raise ValueError(
                f"EARModel: no added domain named {name!r} (added: {self.domain_names_[1:]})"
            )
        domain = self.domain_names_.index(name)
        del self.domain_names_[domain], self.domain_rows_[domain]
        del self.adaptors_[domain - 1], self.adaptor_specs_[domain - 1]
        del self.proxy_scores_[domain - 1]
        self._rebuild_router()
        return self

    def _rebuild_router(self) -> None:
        """HDC class hypervectors and the router from the stored rows of every domain."""
        self.hdc_ = HDCDetector(dim=self.hdc_dim, seed=self.seed)
        for d, rows in enumerate(self.domain_rows_):
            labels = rows.labels.numpy() + d * self.n_classes_
            self.hdc_.partial_fit(FeatureBatch(rows.features.numpy(), labels=labels))
        self.router_: Router
        if self.routing == "learned":
            self.router_ = LearnedRouter.train_on(
                self.domain_rows_, self.router_layers, self.router_l2
            )
        else:
            self.router_ = HDCRouter.from_hdc(
                self.routing, self.hdc_, self.domain_rows_, self.n_classes_
            )
        self.original_bonus_ = calibrate_original_bonus(
            self.router_, self.domain_rows_[0], self.original_keep
        )

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
        return (
            self.max_params is None
            or spec.n_params(features.shape[1], self.n_classes_) <= self.max_params
        )

    def _train(
        self, spec: AdaptorSpec, features: torch.Tensor, labels: torch.Tensor, domain: int
    ) -> nn.Sequential:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + domain)
            adaptor = spec.build(features.shape[1], self.n_classes_)
        optimiser = torch.optim.Adam(
            adaptor.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        for _ in range(self.epochs):
            loss = nn.functional.cross_entropy(adaptor(features), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return adaptor.eval().requires_grad_(False)

    # -- inference ----------------------------------------------------------------
    def module(self) -> EARModule:
        """The frozen model, adaptors and router as one ``forward(x) -> (features, logits)``."""
        self._check_fitted()
        return EARModule(self.model, self.adaptors_, self.router_)

    def route(self, x: Any) -> np.ndarray:
        """int (n,) domain index of each row (0 = original domain, original head)."""
        inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        with torch.no_grad():
            return self.module().routes(inputs).numpy()

    def predict(self, x: Any) -> np.ndarray:
        """float32 (n, n_classes) logits, each row from the head of the domain it is routed to."""
        inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        with torch.no_grad():
            return self.module()(inputs)[1].numpy()

    def ood_score(self, x: Any) -> np.ndarray:
        """float64 (n,) HDC OOD score against all known domains' classes: higher = more OOD."""
        self._check_fitted()
        return self.hdc_.score(FeatureBatch(self._forward(x)[1].numpy()))

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write everything but the frozen model to the folder ``path`` (no pickle), atomically."""
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k != "model"}
        params["candidates"] = [list(c) for c in self.candidates]
        params["router_layers"] = list(self.router_layers)
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
            tensors = {f"router.{k}": v.contiguous() for k, v in self.router_.state_dict().items()}
            for d, rows in enumerate(self.domain_rows_):
                tensors |= {
                    f"rows.{d}.{field}": getattr(rows, field).contiguous() for field in _ROW_FIELDS
                }
            for d, adaptor in enumerate(self.adaptors_, start=1):
                tensors |= {f"{d}.{k}": v.contiguous() for k, v in adaptor.state_dict().items()}
            save_file(tensors, str(tmp / _TENSORS_FILE))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: FrozenModel) -> EARModel:
        """Load an EAR model saved by :meth:`save` around the same frozen ``model``."""
        meta = read_meta(path, cls.kind)
        params = meta["params"] | {
            "candidates": tuple(tuple(c) for c in meta["params"]["candidates"]),
            "router_layers": tuple(meta["params"]["router_layers"]),
        }
        ear = cls(model, **params)
        ear.n_classes_ = meta["n_classes_"]
        ear.domain_names_ = meta["domain_names_"]
        ear.proxy_scores_ = meta["proxy_scores_"]
        ear.adaptor_specs_ = [AdaptorSpec(tuple(h)) for h in meta["adaptor_specs_"]]
        ear.original_bonus_ = meta["original_bonus_"]
        ear.hdc_ = cast(HDCDetector, HDCDetector.load(Path(path) / _HDC_FOLDER))
        tensors = load_file(str(Path(path) / _TENSORS_FILE))
        ear.domain_rows_ = [
            DomainRows(*(tensors[f"rows.{d}.{field}"] for field in _ROW_FIELDS))
            for d in range(len(ear.domain_names_))
        ]
        router = {
            k.removeprefix("router."): v for k, v in tensors.items() if k.startswith("router.")
        }
        ear.router_ = (
            LearnedRouter(ear.router_layers, **router)
            if ear.routing == "learned"
            else HDCRouter(ear.routing, **router)
        )
        in_dim = ear.hdc_.projection_.shape[0]
        ear.adaptors_ = []
        for d, spec in enumerate(ear.adaptor_specs_, start=1):
            adaptor = spec.build(in_dim, ear.n_classes_)
            prefix = f"{d}."
            adaptor.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
            ear.adaptors_.append(adaptor.eval().requires_grad_(False))
        return ear

    # -- checks -------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "router_"):
            raise RuntimeError("EARModel: call fit() or load() first")

    def _check_labels(self, y: Any) -> np.ndarray:
        labels = np.asarray(y, dtype=np.int64)
        n_classes = getattr(self, "n_classes_", None)
        if n_classes is not None and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"EARModel: labels must be in 0..{n_classes - 1} (domain-incremental only)"
            )
        return labels


def _key(spec: AdaptorSpec) -> str:
    return "x".join(str(w) for w in spec.hidden)
