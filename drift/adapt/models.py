"""The deployed model as a trainable ``nn.Module``, and an adapted module back to ``.pt2``.

What works in torch 2.13 (checked by ``tests/test_adapt.py``):

* ``export`` (``torch.export.load(path).module()``): the unlifted ``GraphModule`` has
  real ``nn.Parameter`` s (``requires_grad=True``) under the original names, so
  autograd trains it, ``copy.deepcopy`` works, its ``state_dict`` loads into the
  eager model and back, and it can be re-exported with ``torch.export.export``.
  **But** ``.train()`` and ``.eval()`` raise ``NotImplementedError``: the graph is
  frozen in the mode it was traced in (normally eval: dropout off, batch-norm uses
  and never updates its running statistics). MOL's inner loop never switches modes,
  so this is fine for it; a method that needs train-mode batch-norm needs the eager
  model (``entrypoint`` format).
* ``torchscript``: parameters train with autograd, ``deepcopy`` and ``train()`` work,
  but ``torch.export.export`` refuses a ``ScriptModule`` (torch suggests
  ``TS2EPConverter``, not tried here): save an adapted TorchScript model with
  ``torch.jit.save`` instead of :func:`export_module`.
* ``entrypoint``: an ordinary eager module; everything works.
* a state dict: load it into any of the above with ``weights=`` (safetensors only,
  no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_model
from torch import nn

from drift.atomic import write_file

if TYPE_CHECKING:
    from drift.config import ModelSpec


def trainable_module(spec: ModelSpec, weights: str | os.PathLike | None = None) -> nn.Module:
    """The model of ``spec`` as an ``nn.Module`` whose parameters all require grad.

    Parameters
    ----------
    spec
        ``export``, ``torchscript`` or ``entrypoint`` format (``precomputed`` has no module).
    weights
        optional safetensors file whose tensors replace the module's (same names).
    """
    from drift.embed import load_module

    module = load_module(spec)
    if not isinstance(module, nn.Module):
        raise TypeError(f"model: expected an nn.Module, the {spec.format} loader gave {type(module).__name__}")
    if weights is not None:
        load_model(module, str(weights))
    return module.requires_grad_(True)


def export_module(module: nn.Module, example_input: torch.Tensor, path: str | os.PathLike) -> Path:
    """``torch.export`` ``module`` with a dynamic batch dimension and save it to ``path`` atomically.

    Works for eager modules and for modules loaded from a ``.pt2`` (re-export), not
    for TorchScript modules.
    ``example_input`` needs at least 2 rows (export specialises sizes 0 and 1).

    Examples
    --------
    >>> import tempfile
    >>> net = nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     saved = export_module(net, torch.zeros(2, 3), Path(tmp) / "m.pt2")
    ...     loaded = torch.export.load(str(saved)).module()
    ...     bool(torch.allclose(loaded(torch.ones(5, 3)), net(torch.ones(5, 3))))
    True
    """
    program = torch.export.export(
        module, (example_input,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    path = Path(path)
    write_file(path, lambda tmp: torch.export.save(program, tmp))
    return path
