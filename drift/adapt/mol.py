"""MOL: a meta-learned initialisation that adapts to a shifted distribution in a few steps.

Wu, Lu, Fang, Zhang, "Meta OOD Learning for Continuously Adaptive OOD Detection",
ICCV 2023 (arXiv 2309.11705), in the CAOOD setting: ID and OOD distributions keep
shifting and each new distribution comes with only a few labelled ID rows.

Only the paper's abstract could be read (see ``docs/methods.md`` §5.1). What is fixed by
the abstract: a *learning-to-adapt* scheme that learns a good initialisation θ during
training and adapts it to each new distribution with a few gradient steps. Everything
else here is a **reconstruction**, not the paper's recipe:

* meta-tasks are shifts simulated from the reference data by a caller-supplied
  ``shift_fn`` (e.g. corruptions of random kind and severity);
* the meta-update is **first-order MAML** (FOMAML);
* the loss is cross-entropy plus ``ood_weight`` × the energy-margin loss of Liu et
  al. (NeurIPS 2020) with *synthetic* outliers: mixes of two ID rows of different
  classes (no auxiliary outlier set is needed);
* at test time every adaptation starts from θ (never from the previous night's
  adapted weights), so errors do not accumulate.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from drift.adapt._artifact import atomic_folder, read_meta
from drift.params import ParamsMixin

#: ``shift_fn(x, rng) -> x'``: one simulated distribution shift applied to all rows of ``x``.
ShiftFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]

WEIGHTS_FILE = "meta_init.safetensors"


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output: ``output[1]`` of a ``(features, logits)`` pair, else ``output``."""
    return output[1] if isinstance(output, tuple | list) else output


def energy(logits: torch.Tensor) -> torch.Tensor:
    """Free energy ``-logsumexp(logits)`` per row (T = 1): higher = more OOD."""
    return -torch.logsumexp(logits, dim=1)


def mixed_outliers(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Synthetic outliers: each row blended 30–70 % with a random row of another class.

    A half-and-half mix of two classes belongs to neither, so it is a cheap
    outlier that needs no auxiliary data. Pairs of the same class are dropped;
    the result may be empty.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    >>> out = mixed_outliers(x, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    >>> bool(((out > 0.29) & (out < 0.71)).all())
    True
    """
    partner = torch.randint(0, len(x), (len(x),), generator=generator)
    other_class = y != y[partner]
    weight = 0.3 + 0.4 * torch.rand(len(x), 1, generator=generator)
    mixed = weight * x + (1 - weight) * x[partner]
    return mixed[other_class]


@dataclass(frozen=True)
class EnergyMarginLoss:
    r"""Cross-entropy + ``ood_weight`` × energy-margin loss on :func:`mixed_outliers`.

    .. math::
        \mathcal{L} = \mathrm{CE} + w\,\big(\mathbb{E}_{in}[\max(0, E(x) - m_{in})^2]
                      + \mathbb{E}_{out}[\max(0, m_{out} - E(\tilde x))^2]\big)

    (Liu et al., NeurIPS 2020). The margins are in the energy units of the model's
    logits: the defaults suit the digits model, whose clean-row energies are about
    −20..−11 and whose novel-class energies are about −10..−4.
    """

    ood_weight: float = 0.01
    margin_in: float = -12.0
    margin_out: float = -6.0

    def __call__(
        self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        logits = logits_of(module(x))
        loss = nn.functional.cross_entropy(logits, y)
        if self.ood_weight == 0:
            return loss
        outliers = mixed_outliers(x, y, generator)
        in_term = torch.relu(energy(logits) - self.margin_in).pow(2).mean()
        out_term = (
            torch.relu(self.margin_out - energy(logits_of(module(outliers)))).pow(2).mean()
            if len(outliers)
            else torch.zeros(())
        )
        return loss + self.ood_weight * (in_term + out_term)


def _as_tensors(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.as_tensor(
        np.asarray(y), dtype=torch.int64
    )


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _sgd_steps(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    loss_fn: EnergyMarginLoss,
    generator: torch.Generator,
) -> None:
    """``steps`` full-batch plain-SGD steps on ``(x, y)``, in place (the MAML inner loop)."""
    params = _trainable(module)
    for _ in range(steps):
        grads = torch.autograd.grad(loss_fn(module, x, y, generator), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(lr * g)


def fine_tune(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    steps: int,
    lr: float,
    loss_fn: EnergyMarginLoss | None = None,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` after ``steps`` plain-SGD steps on the labelled rows ``(x, y)``.

    ``model`` is left untouched. Only parameters with ``requires_grad`` move. The
    module's train/eval mode is never switched (``torch.export`` modules refuse to
    switch; few-shot batches are too small for batch-norm statistics anyway).
    This is both MOL's test-time adaptation (from θ) and the "fine-tune the
    deployed model" baseline (from the deployed weights).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> net = nn.Linear(2, 2)
    >>> x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    >>> tuned = fine_tune(net, x, y, steps=20, lr=0.5)
    >>> tuned is not net, tuned(torch.eye(2)).argmax(1).tolist()
    (True, [0, 1])
    """
    xt, yt = _as_tensors(x, y)
    adapted = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    _sgd_steps(adapted, xt, yt, steps, lr, loss_fn or EnergyMarginLoss(), generator)
    return adapted


def _unshifted(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rows  # a real task's rows are shifted already


class MetaOODLearner(ParamsMixin):
    """Meta-learns an initialisation θ that adapts to a new shift in a few SGD steps.

    **Reconstruction** of MOL (Wu et al., ICCV 2023); see the module docstring for
    what is from the paper and what is not.

    Meta-training (first-order MAML): each iteration draws ``tasks_per_iteration``
    tasks. A task takes ``shots + query_shots`` reference rows per class and passes
    them all through one call of ``shift_fn`` (one simulated distribution), then
    splits them into a support set (``shots`` per class) and a query set. A fast copy
    of θ takes ``inner_steps`` SGD steps on the support; the gradient of the query
    loss *at the adapted weights* is averaged over tasks and applied to θ with Adam.
    Given real shifted tasks (``tasks`` of :meth:`meta_train`), a share
    ``real_task_share`` of the tasks is drawn from them instead, unshifted.

    Why first-order MAML: second-order MAML costs a Hessian-vector product per inner
    step; FOMAML and Reptile cost ``inner_steps + 1`` passes per task, and FOMAML's
    outer gradient is the query loss *after* adaptation (the quantity evaluated).

    Parameters
    ----------
    inner_steps
        SGD steps per adaptation, in meta-training and in :meth:`adapt`.
    inner_lr
        SGD learning rate of those steps.
    meta_lr
        Adam learning rate of the meta-update of θ.
    meta_iterations
        number of meta-updates.
    tasks_per_iteration
        tasks averaged per meta-update.
    shots
        labelled rows per class in a task's support set.
    query_shots
        rows per class in a task's query set.
    ood_weight, margin_in, margin_out
        the OOD term, see :class:`EnergyMarginLoss`.
    real_task_share
        share of the tasks drawn from the real shifted tasks, when there are some.
    seed
        seeds the task sampler, the shift RNG and the outlier mixing.

    Attributes
    ----------
    meta_model_ : nn.Module
        the module holding θ.
    meta_losses_ : list of float
        mean post-adaptation query loss of each meta-iteration.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 4)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> shift = lambda rows, r: rows + r.normal(0, 1, size=(1, 4)).astype(np.float32)
    >>> torch.manual_seed(0) and None
    >>> mol = MetaOODLearner(meta_iterations=3, shots=2, query_shots=3).meta_train(
    ...     nn.Linear(4, 2), x, y, shift)
    >>> adapted = mol.adapt(x[:4], y[:4])
    >>> adapted is not mol.meta_model_, len(mol.meta_losses_)
    (True, 3)

    References
    ----------
    Wu, Lu, Fang, Zhang, "Meta OOD Learning for Continuously Adaptive OOD
    Detection", ICCV 2023. Finn, Abbeel, Levine, "Model-Agnostic Meta-Learning",
    ICML 2017 (first-order variant). Liu, Wang, Owens, Li, "Energy-based
    Out-of-distribution Detection", NeurIPS 2020 (energy-margin loss).
    """

    kind = "mol"

    def __init__(
        self,
        inner_steps: int = 5,
        inner_lr: float = 0.02,
        meta_lr: float = 1e-3,
        meta_iterations: int = 200,
        tasks_per_iteration: int = 4,
        shots: int = 5,
        query_shots: int = 10,
        ood_weight: float = 0.01,
        margin_in: float = -12.0,
        margin_out: float = -6.0,
        real_task_share: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.meta_lr = meta_lr
        self.meta_iterations = meta_iterations
        self.tasks_per_iteration = tasks_per_iteration
        self.shots = shots
        self.query_shots = query_shots
        self.ood_weight = ood_weight
        self.margin_in = margin_in
        self.margin_out = margin_out
        self.real_task_share = real_task_share
        self.seed = seed

    @property
    def loss_fn(self) -> EnergyMarginLoss:
        return EnergyMarginLoss(self.ood_weight, self.margin_in, self.margin_out)

    def meta_train(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        shift_fn: ShiftFn,
        tasks: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    ) -> Self:
        """Learn θ starting from ``model``'s weights (``model`` itself is not modified).

        ``model(x)`` must return logits or ``(features, logits)``; ``x`` are reference
        input rows, ``y`` their int labels; ``shift_fn(rows, rng)`` returns shifted rows;
        ``tasks`` are real shifted ``(rows, labels)``, e.g. confirmed shifts' feedback.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        rows_of_class = [np.flatnonzero(y == c) for c in np.unique(y)]
        rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        self.meta_model_ = copy.deepcopy(model)
        fast = copy.deepcopy(model)
        meta_params, fast_params = _trainable(self.meta_model_), _trainable(fast)
        optimiser = torch.optim.Adam(meta_params, lr=self.meta_lr)
        self.meta_losses_: list[float] = []
        for _ in range(self.meta_iterations):
            meta_grads = [torch.zeros_like(p) for p in meta_params]
            query_losses = []
            for _ in range(self.tasks_per_iteration):
                if tasks and rng.random() < self.real_task_share:
                    tx, ty = tasks[int(rng.integers(len(tasks)))]
                    by_class = [np.flatnonzero(ty == c) for c in np.unique(ty)]
                    support, query = self._sample_task(tx, ty, by_class, _unshifted, rng)
                else:
                    support, query = self._sample_task(x, y, rows_of_class, shift_fn, rng)
                with torch.no_grad():
                    for f, p in zip(fast_params, meta_params, strict=True):
                        f.copy_(p)
                _sgd_steps(fast, *support, self.inner_steps, self.inner_lr, self.loss_fn, generator)
                query_loss = self.loss_fn(fast, *query, generator)
                # first-order MAML: dL_query/dθ ≈ dL_query/dθ' at the adapted weights θ'
                for total, g in zip(meta_grads, torch.autograd.grad(query_loss, fast_params), strict=True):
                    total += g
                query_losses.append(query_loss.item())
            for p, total in zip(meta_params, meta_grads, strict=True):
                p.grad = total / self.tasks_per_iteration
            optimiser.step()
            self.meta_losses_.append(float(np.mean(query_losses)))
        for p in meta_params:
            p.grad = None
        return self

    def _sample_task(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rows_of_class: list[np.ndarray],
        shift_fn: ShiftFn,
        rng: np.random.Generator,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        per_class = self.shots + self.query_shots
        picks = [
            rng.choice(rows, per_class, replace=len(rows) < per_class) for rows in rows_of_class
        ]
        support_rows = np.concatenate([p[: self.shots] for p in picks])
        query_rows = np.concatenate([p[self.shots :] for p in picks])
        # one shift_fn call for support and query: both come from the same new distribution
        shifted = shift_fn(x[np.concatenate([support_rows, query_rows])], rng)
        xs, ys = _as_tensors(shifted, y[np.concatenate([support_rows, query_rows])])
        n_support = len(support_rows)
        return (xs[:n_support], ys[:n_support]), (xs[n_support:], ys[n_support:])

    def adapt(self, support_x: Any, support_y: Any, steps: int | None = None) -> nn.Module:
        """A new module: θ after ``steps`` (default ``inner_steps``) SGD steps on the support rows.

        Always starts from θ, which stays unchanged, so successive adaptations
        (one per night) never chain.
        """
        self._check_fitted()
        return fine_tune(
            self.meta_model_,
            support_x,
            support_y,
            steps=self.inner_steps if steps is None else steps,
            lr=self.inner_lr,
            loss_fn=self.loss_fn,
            seed=self.seed,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A detached copy of θ (the meta-initialisation's state dict)."""
        self._check_fitted()
        return {k: v.detach().clone() for k, v in self.meta_model_.state_dict().items()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write params and θ (safetensors, no pickle) to the folder ``path`` atomically."""
        self._check_fitted()
        meta = {"params": self.get_params(), "meta_losses_": self.meta_losses_}
        with atomic_folder(path, self.kind, meta) as tmp:
            save_model(self.meta_model_, str(tmp / WEIGHTS_FILE))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module) -> MetaOODLearner:
        """Load a learner saved by :meth:`save`; θ is loaded into a copy of ``model``.

        ``model`` supplies the architecture: any module with the same parameter
        names, e.g. the deployed model from :func:`drift.adapt.models.trainable_module`.
        """
        meta = read_meta(path, cls.kind)
        learner = cls(**meta["params"])
        learner.meta_model_ = copy.deepcopy(model)
        load_model(learner.meta_model_, str(Path(path) / WEIGHTS_FILE))
        learner.meta_losses_ = meta["meta_losses_"]
        return learner

    def _check_fitted(self) -> None:
        if not hasattr(self, "meta_model_"):
            raise RuntimeError("MetaOODLearner: call meta_train() or load() first")
