"""Networks for ratio, flow-matching and score-based methods: classifier, vector field, score."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import ResidualNet, ZScore, _broadcast, mlp, prepare_context

__all__ = ["Classifier", "ScoreNet", "VectorField", "fourier_features"]


def fourier_features(t: Tensor, n: int, frequencies: int) -> Tensor:
    r"""Embed a scalar per row: ``[t, sin(pi k t), cos(pi k t)]`` for ``k = 1..frequencies``.

    Arguments:
        t: A scalar, ``(N,)`` or ``(N, 1)``.
        n: The batch size ``N`` to broadcast to.
        frequencies: Number of frequencies.

    Returns:
        ``(N, 1 + 2 * frequencies)``.
    """
    t = torch.as_tensor(t).reshape(-1, 1).expand(n, 1)
    k = torch.arange(1, frequencies + 1, dtype=t.dtype, device=t.device) * math.pi
    return torch.cat((t, torch.sin(k * t), torch.cos(k * t)), dim=-1)


class _Conditioned(nn.Module):
    """Context handling shared by the nets: z-scoring, embedding, broadcasting."""

    def __init__(self, context: int, embedding: nn.Module | None) -> None:
        super().__init__()
        self.context_features = context
        self.embedding = embedding
        self.context_norm = ZScore()

    def _context(self, context: Tensor | None, n: int) -> list[Tensor]:
        c = prepare_context(context, self.context_features, self.context_norm, self.embedding)
        return [] if c is None else [_broadcast(c, n)]


class Classifier(_Conditioned):
    r"""Binary classifier :math:`d(\theta, x)` for neural ratio estimation.

    Returns logits; trained with a logistic loss on joint vs. marginal pairs, a logit
    estimates :math:`\log p(\theta \mid x) / p(\theta)`. Parameters and contexts are
    z-scored with statistics fitted by :meth:`standardize_`.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding.
        hidden_features: Hidden widths: of the MLP's layers, or of the residual blocks.
        activation: Activation module class.
        embedding: Optional embedding net for raw contexts.
        residual: a :class:`ResidualNet` with one block per entry of ``hidden_features``
            (all equal) instead of an MLP; ``(50, 50)`` is sbi's ``resnet`` classifier.

    Example:
        >>> Classifier(2, 3)(torch.randn(5, 2), torch.randn(5, 3)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        features: int,
        context: int,
        hidden_features: Sequence[int] = (50, 50),
        activation: type[nn.Module] = nn.ReLU,
        embedding: nn.Module | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__(context, embedding)
        self.features = features
        self.theta_norm = ZScore(features)
        if not residual:
            self.net = mlp(features + context, 1, hidden_features, activation)
        elif len(set(hidden_features)) == 1:
            width, blocks = hidden_features[0], len(hidden_features)
            self.net = ResidualNet(features + context, 1, width, blocks, activation)
        else:
            raise ValueError(
                f"a residual classifier needs equal block widths, got {tuple(hidden_features)}"
            )

    @torch.no_grad()
    def standardize_(self, theta: Tensor, context: Tensor | None = None) -> Classifier:
        """Fit the z-scoring of ``theta`` ``(N, D)`` and raw contexts; returns self."""
        self.theta_norm.fit_(theta)
        if context is not None:
            self.context_norm.fit_(context)
        return self

    def forward(self, theta: Tensor, context: Tensor) -> Tensor:
        """Logits ``(N,)`` for ``theta`` ``(N, D)`` and contexts ``(N, ...)`` or one ``(...)``."""
        h = [self.theta_norm(theta), *self._context(context, theta.shape[0])]
        return self.net(torch.cat(h, dim=-1))[..., 0]


class _FourierConditioned(_Conditioned):
    """An MLP of the parameters, a Fourier embedding of one scalar (time, noise level) and the
    context: the body `VectorField` and `ScoreNet` share; contexts z-scored here."""

    def __init__(
        self,
        features: int,
        context: int = 0,
        hidden_features: Sequence[int] = (64, 64, 64),
        frequencies: int = 4,
        activation: type[nn.Module] = nn.SiLU,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__(context, embedding)
        self.features, self.frequencies = features, frequencies
        width = features + 1 + 2 * frequencies + context
        self.net = mlp(width, features, hidden_features, activation)

    @torch.no_grad()
    def standardize_(self, context: Tensor) -> _FourierConditioned:
        """Fit the z-scoring of raw contexts; returns self."""
        self.context_norm.fit_(context)
        return self


class VectorField(_FourierConditioned):
    r"""Time-conditioned vector field :math:`v(\theta_t, t, x)` for flow matching.

    The time ``t`` enters through :func:`fourier_features`. The field acts in whatever
    space the method chooses (typically standardised parameters, with a :class:`ZScore`
    the method owns); only contexts are z-scored here (:meth:`standardize_`). The
    default activation is smooth, so divergences and Jacobians are well defined.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        hidden_features: Hidden widths.
        frequencies: Number of Fourier frequencies of the time embedding.
        activation: Activation module class.
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> VectorField(2, 3)(torch.randn(5, 2), torch.rand(5), torch.randn(3)).shape
        torch.Size([5, 2])
    """

    def forward(self, theta: Tensor, t: Tensor | float, context: Tensor | None = None) -> Tensor:
        """Velocity ``(N, D)`` at ``theta`` ``(N, D)``, time ``t`` (scalar or ``(N,)``)."""
        n = theta.shape[0]
        t = torch.as_tensor(t, dtype=theta.dtype, device=theta.device)
        h = [theta, fourier_features(t, n, self.frequencies), *self._context(context, n)]
        return self.net(torch.cat(h, dim=-1))


class ScoreNet(_FourierConditioned):
    r"""Noise-level-conditioned score :math:`s(\theta, \sigma, x) \approx \nabla_\theta \log p_\sigma(\theta \mid x)`.

    With the preconditioning of Karras et al. (2022) for unit-variance data,
    :math:`s = F([c_{\text{in}} \theta, \phi(c_{\text{noise}}), x]) / \sigma`,
    :math:`c_{\text{in}} = 1 / \sqrt{1 + \sigma^2}`, :math:`c_{\text{noise}} = \log(\sigma) / 4`
    and :math:`\phi` = :func:`fourier_features`. Parameters should be standardised by the
    method; contexts are z-scored here (:meth:`standardize_`). Its arguments are
    :class:`VectorField`'s, ``frequencies`` those of the noise level's embedding.

    Example:
        >>> ScoreNet(2, 3)(torch.randn(5, 2), torch.full((5,), 0.5), torch.randn(3)).shape
        torch.Size([5, 2])
    """

    def forward(
        self, theta: Tensor, sigma: Tensor | float, context: Tensor | None = None
    ) -> Tensor:
        """Score ``(N, D)`` at ``theta`` ``(N, D)`` and noise level ``sigma > 0`` (scalar or ``(N,)``)."""
        n = theta.shape[0]
        sigma = torch.as_tensor(sigma, dtype=theta.dtype, device=theta.device)
        sigma = sigma.reshape(-1, 1).expand(n, 1)
        c_in = torch.rsqrt(1 + sigma.square())
        emb = fourier_features(sigma.log() / 4, n, self.frequencies)
        h = [theta * c_in, emb, *self._context(context, n)]
        return self.net(torch.cat(h, dim=-1)) / sigma
