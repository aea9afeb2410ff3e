"""The scikit-learn parameter convention, shared by detectors and adaptation learners."""

from __future__ import annotations

import inspect
from typing import Any


class ParamsMixin:
    """``get_params`` and ``repr`` from ``__init__``'s signature.

    Classes using it store every constructor argument unchanged under the same
    name and do no work in ``__init__`` (scikit-learn's estimator contract), so
    their parameters can be saved as JSON and passed back to rebuild them.

    Examples
    --------
    >>> class Scaler(ParamsMixin):
    ...     def __init__(self, factor: float = 2.0):
    ...         self.factor = factor
    >>> Scaler(3.0).get_params(), Scaler()
    ({'factor': 3.0}, Scaler(factor=2.0))
    """

    def get_params(self) -> dict[str, Any]:
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
