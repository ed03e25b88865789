"""Normalizing flows: a composable core and the MAF, NSF and RealNVP builders.

A :class:`Flow` is a list of layers from :mod:`sbibench.nn.transforms` mapping
standardised parameters to a standard normal. Its density is
:math:`\\log q(\\theta \\mid x) = \\log \\mathcal{N}(z; 0, I) + \\sum_l \\log|\\det J_l| +
\\log|\\det J_{\\text{z-score}}|`, trained by maximum likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import Estimator, _broadcast, prepare_context, standard_normal_log_prob
from .transforms import Affine, Autoregressive, Coupling, LULinear, Spline

__all__ = ["MAF", "NSF", "CouplingNSF", "Flow", "RealNVP"]


class Flow(Estimator):
    r"""A conditional normalizing flow with a standard normal base.

    Arguments:
        layers: Bijections with ``forward(x, c) -> (y, ladj)`` and
            ``inverse(y, c) -> (x, ladj)``, applied in order from data to noise.
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> flow = MAF(2, 3, transforms=2)
        >>> flow.log_prob(torch.randn(4, 2), torch.randn(3)).shape
        torch.Size([4])
        >>> flow.sample(5, torch.randn(7, 3)).shape
        torch.Size([5, 7, 2])
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        features: int,
        context: int = 0,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__(features, context, embedding)
        self.layers = nn.ModuleList(layers)

    def _forward(self, u: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        ladj = u.new_zeros(u.shape[0])
        for layer in self.layers:
            u, l_ = layer(u, c)
            ladj = ladj + l_
        return u, ladj

    def _inverse(self, z: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        ladj = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, l_ = layer.inverse(z, c)
            ladj = ladj + l_
        return z, ladj

    def _log_prob(self, u: Tensor, c: Tensor | None) -> Tensor:
        z, ladj = self._forward(u, c)
        return standard_normal_log_prob(z) + ladj

    def _sample(self, eps: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        u, ladj = self._inverse(eps, c)
        return u, standard_normal_log_prob(eps) + ladj

    def _context(self, context: Tensor | None, n: int) -> Tensor | None:
        c = prepare_context(context, self.context_features, self.context_norm, self.embedding)
        return _broadcast(c, n)

    def transform(self, theta: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The whole map from parameters ``(N, D)`` to noise, z-scoring included.

        Returns:
            ``z`` ``(N, D)`` and :math:`\\log|\\det \\partial z / \\partial \\theta|` ``(N,)``.
        """
        theta = self._check_theta(theta)
        z, ladj = self._forward(self.theta_norm(theta), self._context(context, theta.shape[0]))
        return z, ladj + self.theta_norm.log_abs_det(self.features)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The map from noise ``(N, D)`` back to parameters.

        Returns:
            ``theta`` ``(N, D)`` and :math:`\\log|\\det \\partial z / \\partial \\theta|` ``(N,)``
            at ``theta`` (the forward map's, as :meth:`transform` returns it).
        """
        z = self._check_theta(z)
        u, ladj = self._inverse(z, self._context(context, z.shape[0]))
        return self.theta_norm.inverse(u), ladj + self.theta_norm.log_abs_det(self.features)


def _orders(features: int, transforms: int, randperm: bool) -> list[Tensor]:
    if randperm:
        return [torch.randperm(features) for _ in range(transforms)]
    natural = torch.arange(features)
    return [natural if i % 2 == 0 else natural.flip(0) for i in range(transforms)]


def _autoregressive(
    univariate: nn.Module,
    features: int,
    context: int,
    transforms: int,
    hidden_features: Sequence[int],
    activation: type[nn.Module],
    randperm: bool,
    embedding: nn.Module | None,
) -> Flow:
    layers = [
        Autoregressive(features, context, univariate, hidden_features, activation, order)
        for order in _orders(features, transforms, randperm)
    ]
    return Flow(layers, features, context, embedding)


def MAF(
    features: int,
    context: int = 0,
    transforms: int = 5,
    hidden_features: Sequence[int] = (50, 50),
    activation: type[nn.Module] = nn.ReLU,
    randperm: bool = False,
    scale_bound: float = 3.0,
    embedding: nn.Module | None = None,
) -> Flow:
    r"""Masked autoregressive flow (Papamakarios et al., 2017).

    ``transforms`` MADE-conditioned affine layers, the autoregressive order reversed
    (or randomly permuted, from torch's global generator) from one layer to the next.
    Density evaluation is one MADE pass per layer; sampling is ``D`` prefix passes.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        transforms: Number of autoregressive layers.
        hidden_features: Hidden widths of each MADE.
        activation: Activation module class.
        randperm: Random orders instead of alternating natural and reversed ones.
        scale_bound: Bound of each layer's log-scale (see :class:`Affine`).
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> flow = MAF(3, 2)
        >>> flow.sample_and_log_prob(4, torch.zeros(2))[1].shape
        torch.Size([4])
    """
    return _autoregressive(
        Affine(scale_bound), features, context, transforms, hidden_features, activation,
        randperm, embedding,
    )  # fmt: skip


def NSF(
    features: int,
    context: int = 0,
    transforms: int = 5,
    bins: int = 8,
    bound: float = 5.0,
    hidden_features: Sequence[int] = (50, 50),
    activation: type[nn.Module] = nn.ReLU,
    randperm: bool = False,
    embedding: nn.Module | None = None,
) -> Flow:
    r"""Neural spline flow (Durkan et al., 2019): autoregressive rational-quadratic spline
    layers (MADE conditioners, the order reversed from one layer to the next).

    Splines act on :math:`[-B, B]` of the standardised parameters, identity outside.
    :func:`CouplingNSF` is the coupling variant that sbi builds.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        transforms: Number of spline layers.
        bins: Number of spline bins :math:`K`.
        bound: Spline interval half-width :math:`B`, in standardised units.
        hidden_features: Hidden widths of each conditioner.
        activation: Activation module class.
        randperm: Random orders instead of alternating ones.
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> NSF(2, 1).log_prob(torch.randn(3, 2), torch.randn(3, 1)).shape
        torch.Size([3])
    """
    return _autoregressive(
        Spline(bins, bound), features, context, transforms, hidden_features, activation,
        randperm, embedding,
    )  # fmt: skip


def CouplingNSF(
    features: int,
    context: int = 0,
    transforms: int = 5,
    bins: int = 10,
    bound: float = 3.0,
    hidden_features: Sequence[int] = (50, 50),
    embedding: nn.Module | None = None,
) -> Flow:
    r"""The neural spline flow of sbi (``density_estimator="nsf"``, built on nflows), layer for
    layer: rational-quadratic spline coupling layers that map the even and the odd features
    in turn, each followed by an :class:`~sbibench.nn.transforms.LULinear` layer (D > 1).

    Each conditioner is a residual net of ``blocks`` blocks of ``hidden`` units whose blocks
    the context gates (:class:`~sbibench.nn.base.ResidualNet`); the splines' raw widths and
    heights are divided by :math:`\sqrt{\text{hidden}}`, as nflows does. Splines act on
    :math:`[-B, B]` of the standardised parameters, identity outside. With D = 1 the
    conditioner sees the context only.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        transforms: Number of coupling layers.
        bins: Number of spline bins :math:`K`.
        bound: Spline interval half-width :math:`B`, in standardised units.
        hidden_features: One equal width per residual block of each conditioner.
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> CouplingNSF(2, 1).log_prob(torch.randn(3, 2), torch.randn(3, 1)).shape
        torch.Size([3])
    """
    hidden, blocks = hidden_features[0], len(hidden_features)
    if any(width != hidden for width in hidden_features):
        raise ValueError(f"a residual net keeps one width; got hidden_features {hidden_features}")
    spline = Spline(bins, bound, raw_scale=hidden**-0.5)
    layers: list[nn.Module] = []
    for i in range(transforms):
        mapped = range(i % 2, features, 2) if features > 1 else [0]
        layers.append(
            Coupling(
                features,
                context,
                spline,
                hidden_features=(hidden,),
                mapped=mapped,
                residual_blocks=blocks,
            )  # fmt: skip
        )
        if features > 1:
            layers.append(LULinear(features))
    return Flow(layers, features, context, embedding)


def RealNVP(
    features: int,
    context: int = 0,
    transforms: int = 5,
    hidden_features: Sequence[int] = (50, 50),
    activation: type[nn.Module] = nn.ReLU,
    scale_bound: float = 3.0,
    embedding: nn.Module | None = None,
) -> Flow:
    r"""RealNVP (Dinh et al., 2017): affine coupling layers alternating the kept half.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        transforms: Number of coupling layers.
        hidden_features: Hidden widths of each conditioner MLP.
        activation: Activation module class.
        scale_bound: Bound of each layer's log-scale (see :class:`Affine`).
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> RealNVP(4).sample(3).shape
        torch.Size([3, 4])
    """
    affine = Affine(scale_bound)
    layers = [
        Coupling(features, context, affine, i % 2 == 1, hidden_features, activation)
        for i in range(transforms)
    ]
    return Flow(layers, features, context, embedding)
