"""EAR: frozen Encoder, shallow Adaptors chosen by zero-shot NAS, and a Reconfigurator.

Daniels, Hu, Lomnitz, Miller, Raghavan, Zhang, Piacentino, Zhang, "Efficient Model
Adaptation for Continual Learning at the Edge", arXiv 2308.02084 (SRI). The abstract
fixes the three parts: a frozen DNN feature encoder; OOD detection by combining its
features with hyperdimensional computing (HDC); low-parameter adaptors found by
zero-shot NAS; and reconfigurators that route data through the right adaptor for
domain-incremental learning. No EAR code or full text was available (``docs/methods.md``
§5.2), so the following choices are a **reconstruction**:

* HDC = the HDFF detector (Wilson et al., WACV 2023), :class:`drift.detectors.hdc.HDCDetector`,
  on the encoder's features, with one class hypervector per (domain, class): the
  OOD score (:meth:`EARModel.ood_score`) and the HDC routing ablations;
* candidate adaptors = ReLU MLP heads on the features (:class:`AdaptorSpec`,
  :mod:`~drift.adapt.ear.spec`);
* zero-shot proxy = NASWOT (Mellor et al., ICML 2021), :func:`naswot_score`;
* reconfigurator (:mod:`~drift.adapt.ear.routing`) = a router trained on the stored
  rows of every domain, reading several layers (input, penultimate features,
  logits), retrained with all earlier domains' rows whenever a domain is added;
  domain 0 is the original domain, served by the model's own, untouched head, and
  gets the smallest bonus that keeps ``original_keep`` of its rows on that head;
* one model file (:mod:`~drift.adapt.ear.export`): :class:`EARModule` does the
  routing inside ``forward(x) -> (features, logits)`` and :func:`export_ear` writes
  it as a ``torch.export`` ``.pt2``.
"""

from drift.adapt.ear.export import EARModule, FrozenModel, export_ear
from drift.adapt.ear.model import ROUTINGS, EARModel
from drift.adapt.ear.routing import ROUTER_LAYERS, DomainRows, HDCRouter, LearnedRouter
from drift.adapt.ear.spec import DEFAULT_CANDIDATES, AdaptorSpec, naswot_score

__all__ = [
    "DEFAULT_CANDIDATES",
    "ROUTER_LAYERS",
    "ROUTINGS",
    "AdaptorSpec",
    "DomainRows",
    "EARModel",
    "EARModule",
    "FrozenModel",
    "HDCRouter",
    "LearnedRouter",
    "export_ear",
    "naswot_score",
]
