"""Embedding nets for contexts: a plain MLP and a DeepSet for i.i.d. sets of varying size.

Any module mapping a raw context ``(..., raw)`` to ``(..., C)`` can be passed as
``embedding=`` to every estimator and net of :mod:`sbibench.nn`; it is trained jointly
with the estimator and sees z-scored raw contexts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import mlp

__all__ = ["MLP", "DeepSet", "pad_sets"]


class MLP(nn.Module):
    """A multi-layer perceptron embedding ``(..., in_features) -> (..., out_features)``.

    Arguments:
        in_features: Raw context features.
        out_features: Embedded features :math:`C`.
        hidden_features: Hidden widths.
        activation: Activation module class.

    Example:
        >>> MLP(5, 3)(torch.randn(7, 5)).shape
        torch.Size([7, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.net = mlp(in_features, out_features, hidden_features, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class DeepSet(nn.Module):
    r"""Permutation-invariant embedding of i.i.d. sets (Zaheer et al., 2017).

    :math:`\rho\big(\operatorname{mean}_j \phi(x_j), \log(1 + n)\big)`, where :math:`n` is the
    set's size, so the embedding can tell a large set from a small one.

    Sets of varying size are **padded with NaN rows** to a common size :math:`M` (see
    :func:`pad_sets`): a row with any NaN is padding and is ignored. Inputs are
    ``(M, d)`` (one set) or ``(B, M, d)`` (a batch); outputs ``(C,)`` or ``(B, C)``.
    A set may be empty (all padding); it then embeds as :math:`\rho(0, 0)`.

    Arguments:
        in_features: Features :math:`d` of one set element.
        out_features: Embedded features :math:`C`.
        hidden_features: Hidden widths of both :math:`\phi` and :math:`\rho`.
        pooled_features: Width of :math:`\phi`'s output.
        activation: Activation module class.

    Example:
        >>> net = DeepSet(2, 4)
        >>> x = pad_sets([torch.randn(3, 2), torch.randn(5, 2)])
        >>> x.shape, net(x).shape
        (torch.Size([2, 5, 2]), torch.Size([2, 4]))
        >>> torch.allclose(net(x[0, :3]), net(x)[0], atol=1e-6)
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: Sequence[int] = (64, 64),
        pooled_features: int = 64,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.phi = mlp(in_features, pooled_features, hidden_features, activation)
        self.rho = mlp(pooled_features + 1, out_features, hidden_features, activation)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3):
            raise ValueError(f"DeepSet takes (M, d) or (B, M, d) sets, got {tuple(x.shape)}")
        valid = ~torch.isnan(x).any(-1, keepdim=True)  # (..., M, 1)
        h = self.phi(torch.where(valid, x, 0.0)) * valid
        n = valid.sum(-2).to(h.dtype)  # (..., 1)
        pooled = h.sum(-2) / n.clamp_min(1)
        return self.rho(torch.cat((pooled, torch.log1p(n)), dim=-1))


def pad_sets(sets: Sequence[Tensor], size: int | None = None) -> Tensor:
    """Stack sets ``(m_b, d)`` of varying sizes into ``(B, M, d)``, padding with NaN.

    Arguments:
        sets: The sets, each of shape ``(m_b, d)``.
        size: The common size :math:`M` (default: the largest :math:`m_b`).

    Example:
        >>> pad_sets([torch.ones(1, 2), torch.zeros(2, 2)])[0]
        tensor([[1., 1.],
                [nan, nan]])
    """
    if not sets:
        raise ValueError("pad_sets needs at least one set")
    size = max(s.shape[0] for s in sets) if size is None else size
    if any(s.ndim != 2 or s.shape[0] > size for s in sets):
        raise ValueError(f"sets must be (m, d) with m <= {size}")
    out = sets[0].new_full((len(sets), size, sets[0].shape[1]), float("nan"))
    for b, s in enumerate(sets):
        out[b, : s.shape[0]] = s
    return out
