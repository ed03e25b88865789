"""Neural density estimators, embeddings and networks for simulation-based inference.

Conventions shared by every estimator (:class:`Flow` from :func:`MAF`, :func:`NSF`,
:func:`RealNVP`, and :class:`MDN`), all ``torch.nn.Module`` in float32 by default:

- ``log_prob(theta, context)``: ``theta`` ``(N, D)``; ``context`` ``(N, ...)``, one
  context ``(...)`` broadcast over the batch, or ``None`` for an unconditional model;
  returns ``(N,)``.
- ``sample(n, context, generator=None)``: one context gives ``(n, D)``; ``B`` contexts
  give ``(n, B, D)``, the noise of each context drawn in turn, so the batch equals
  sampling the contexts one after another from the same generator.
- ``sample_and_log_prob(n, context, generator=None)``: the same, with log-densities
  ``(n,)`` or ``(n, B)``.
- ``standardize_(theta, context)``: fit the z-scoring from training data once, before
  training; it is part of the model (buffers) and of ``log_prob`` (with its Jacobian).
- ``embedding=``: any module mapping raw contexts ``(..., raw)`` to ``(..., C)``, e.g.
  :class:`DeepSet` for NaN-padded i.i.d. sets, trained jointly.

Train any of them with :func:`train`.
"""

from __future__ import annotations

from typing import Any

from sbibench.registry import lookup

from .base import Estimator, ZScore, mlp
from .embeddings import MLP, DeepSet, pad_sets
from .flows import MAF, NSF, CouplingNSF, Flow, RealNVP
from .made import MADE
from .mdn import MDN
from .nets import Classifier, ScoreNet, VectorField
from .train import TrainResult, train

__all__ = [
    "ESTIMATORS",
    "MADE",
    "MAF",
    "MDN",
    "MLP",
    "NSF",
    "Classifier",
    "CouplingNSF",
    "DeepSet",
    "Estimator",
    "Flow",
    "RealNVP",
    "ScoreNet",
    "TrainResult",
    "VectorField",
    "ZScore",
    "build_estimator",
    "mlp",
    "pad_sets",
    "train",
]

#: Density estimators by name: ``"module:attribute"`` of a builder
#: ``builder(features, context=0, **options) -> Estimator``.
ESTIMATORS: dict[str, str] = {
    "maf": "sbibench.nn.flows:MAF",
    "nsf": "sbibench.nn.flows:NSF",
    "nsf_coupling": "sbibench.nn.flows:CouplingNSF",
    "realnvp": "sbibench.nn.flows:RealNVP",
    "mdn": "sbibench.nn.mdn:MDN",
}


def build_estimator(name: str, features: int, context: int = 0, **options: Any) -> Estimator:
    """Build a density estimator from :data:`ESTIMATORS` by name.

    Arguments:
        name: A key of :data:`ESTIMATORS` (``"maf"``, ``"nsf"``, ``"nsf_coupling"``,
            ``"realnvp"``, ``"mdn"``).
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding.
        options: Keyword arguments of the builder (``transforms``, ``hidden_features``,
            ``embedding``, ...).

    Example:
        >>> import torch
        >>> build_estimator("nsf", 2, 3, transforms=2).sample(4, torch.zeros(3)).shape
        torch.Size([4, 2])
    """
    return lookup(ESTIMATORS, name, "estimator")(features, context, **options)
