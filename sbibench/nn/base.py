"""Shared plumbing of every estimator: z-scoring, embeddings, context broadcasting, sampling."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Estimator", "ResidualNet", "ZScore", "mlp", "prepare_context"]

LOG_2PI = math.log(2 * math.pi)


def mlp(
    in_features: int,
    out_features: int,
    hidden_features: Sequence[int] = (50, 50),
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """A multi-layer perceptron ``Linear -> activation -> ... -> Linear``.

    Arguments:
        in_features: Input features; 0 is allowed (the output is then learned biases).
        out_features: Output features.
        hidden_features: Widths of the hidden layers.
        activation: Activation module class, instantiated between layers.

    Example:
        >>> mlp(3, 2)(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """
    widths = [in_features, *hidden_features, out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i > 0:
            layers.append(activation())
        with warnings.catch_warnings():  # a 0-input layer (no context, nothing kept) is fine
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class ResidualNet(nn.Module):
    """A residual network ``Linear -> blocks -> Linear``, as nflows' ``ResidualNet``.

    Each block maps h to ``h + W2 act(W1 act(h))`` at the constant width ``hidden``; the
    second layer of a block starts near zero (U(-1e-3, 1e-3)), so every block starts close to
    the identity. With ``context`` features C, the first layer takes the input and the context
    side by side and each block's output is gated by ``sigmoid(W_c c)`` (nflows' GLU), as in
    the conditioners of sbi's neural spline flow; without, it is sbi's ``resnet`` classifier
    body (2 blocks of 50 units, no batch norm, no dropout).

    Arguments:
        in_features: Input features.
        out_features: Output features.
        hidden: Width of every block.
        blocks: Number of residual blocks.
        activation: Activation module class.
        context: Context features C (0: none).

    Example:
        >>> ResidualNet(3, 1, hidden=8, blocks=2)(torch.zeros(5, 3)).shape
        torch.Size([5, 1])
        >>> ResidualNet(3, 4, context=2)(torch.zeros(5, 3), torch.zeros(5, 2)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 50,
        blocks: int = 2,
        activation: type[nn.Module] = nn.ReLU,
        context: int = 0,
    ) -> None:
        super().__init__()
        if hidden < 1 or blocks < 1:
            raise ValueError(f"need hidden >= 1 and blocks >= 1, got {hidden} and {blocks}")
        self.hidden = hidden
        self.first = nn.Linear(in_features + context, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                activation(), nn.Linear(hidden, hidden), activation(), nn.Linear(hidden, hidden)
            )
            for _ in range(blocks)
        )
        for block in self.blocks:
            nn.init.uniform_(block[-1].weight, -1e-3, 1e-3)
            nn.init.uniform_(block[-1].bias, -1e-3, 1e-3)
        self.gates = nn.ModuleList(
            nn.Linear(context, hidden) for _ in range(blocks if context else 0)
        )
        self.last = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """``(N, in_features)`` and, with a context, ``(N, C)`` -> ``(N, out_features)``."""
        h = self.first(x if c is None else torch.cat((x, c), dim=-1))
        for i, block in enumerate(self.blocks):
            step = block(h)
            if c is not None:
                step = step * torch.sigmoid(self.gates[i](c))
            h = h + step
        return self.last(h)


class ZScore(nn.Module):
    r"""Per-feature standardisation :math:`z = (x - \mu) / \sigma` fitted from data.

    The identity until :meth:`fit_` is called. Statistics are taken over every
    dimension but the last and ignore NaN entries (the padding of :class:`DeepSet`
    inputs), so the same module standardises ``(N, D)`` vectors and ``(N, M, d)`` sets.
    Constant features get :math:`\sigma = 1`. The statistics are buffers: they are
    saved with ``state_dict`` and follow ``.to(dtype)``.

    Arguments:
        features: Size of the last dimension, or ``None`` to learn it from :meth:`fit_`.

    Example:
        >>> z = ZScore(2).fit_(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
        >>> z(torch.tensor([[2.0, 3.0]]))
        tensor([[1., 1.]])
    """

    def __init__(self, features: int | None = None) -> None:
        super().__init__()
        shape = () if features is None else (features,)
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    @torch.no_grad()
    def fit_(self, x: Tensor, eps: float = 1e-8) -> ZScore:
        """Fit mean and standard deviation from ``x`` of shape ``(..., d)``; returns self."""
        x = x.detach().to(self.shift).flatten(0, -2)
        if self.shift.ndim == 1 and x.shape[-1] != self.shift.shape[0]:
            raise ValueError(f"expected {self.shift.shape[0]} features, got {x.shape[-1]}")
        mean = torch.nanmean(x, dim=0)
        std = torch.nanmean((x - mean).square(), dim=0).sqrt()
        std = torch.where(torch.isfinite(std) & (std > eps), std, torch.ones_like(std))
        self.shift = torch.nan_to_num(mean)
        self.scale = std
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Standardise ``x`` of shape ``(..., d)``."""
        return (x - self.shift) / self.scale

    def inverse(self, z: Tensor) -> Tensor:
        """Undo the standardisation."""
        return z * self.scale + self.shift

    def log_abs_det(self, features: int) -> Tensor:
        """``log|det dz/dx|`` for one ``features``-dimensional vector (a scalar)."""
        return -self.scale.log().sum() * (features if self.scale.ndim == 0 else 1)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # A lazily shaped ZScore takes whatever shape the saved statistics have.
        for name in ("shift", "scale"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def prepare_context(
    context: Tensor | None,
    features: int,
    norm: ZScore,
    embedding: nn.Module | None,
    name: str = "context",
) -> Tensor | None:
    """Standardise and embed a raw context; check that it has ``features`` features.

    Returns ``None`` for an unconditional model, else a tensor ``(C,)`` (one context, to be
    broadcast) or ``(B, C)``.
    """
    if context is None:
        if features > 0:
            raise ValueError(f"{name} is required: the model has {features} context features")
        return None
    if features == 0:
        raise ValueError(f"the model is unconditional but a {name} was given")
    c = norm(context.to(norm.shift.dtype))
    if embedding is not None:
        c = embedding(c)
    if c.ndim not in (1, 2) or c.shape[-1] != features:
        raise ValueError(
            f"{name} must become (C,) or (B, C) with C={features} after embedding; "
            f"got {tuple(c.shape)} from {tuple(context.shape)}"
        )
    return c


def _broadcast(c: Tensor | None, n: int) -> Tensor | None:
    if c is None:
        return None
    if c.ndim == 1:
        return c.expand(n, c.shape[0])
    if c.shape[0] != n:
        raise ValueError(f"context batch {c.shape[0]} does not match theta batch {n}")
    return c


class Estimator(nn.Module):
    r"""Base of the conditional density estimators :math:`q(\theta \mid x)`.

    It owns what every estimator shares: z-scoring of parameters and contexts (fitted
    with :meth:`standardize_`, applied inside :meth:`log_prob` with its Jacobian), an
    optional embedding net, broadcasting of contexts, and batched sampling. A subclass
    implements ``_log_prob(u, c)`` on standardised parameters ``u`` ``(N, D)`` and
    embedded contexts ``c`` ``(N, C)`` (or ``None``), and ``_sample(eps, c)`` turning noise
    from ``_noise`` into ``(u, log q(u))``.

    Context shapes: a raw context is whatever the embedding net takes (``(C,)`` rows
    without one). After embedding, ``(C,)`` is one context broadcast over the batch and
    ``(B, C)`` is a batch of contexts.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional).
        embedding: Optional module mapping raw contexts ``(..., raw)`` to ``(..., C)``.
    """

    def __init__(self, features: int, context: int = 0, embedding: nn.Module | None = None):
        super().__init__()
        if features < 1 or context < 0:
            raise ValueError(f"need features >= 1 and context >= 0, got {features}, {context}")
        self.features = features
        self.context_features = context
        self.embedding = embedding
        self.theta_norm = ZScore(features)
        self.context_norm = ZScore()

    @torch.no_grad()
    def standardize_(self, theta: Tensor, context: Tensor | None = None) -> Estimator:
        """Fit the z-scoring of parameters ``(N, D)`` and raw contexts from training data.

        Call once, before training. Returns self.
        """
        self.theta_norm.fit_(theta)
        if context is not None:
            self.context_norm.fit_(context)
        return self

    def _check_theta(self, theta: Tensor) -> Tensor:
        if theta.ndim != 2 or theta.shape[1] != self.features:
            raise ValueError(f"theta must be (N, {self.features}), got {tuple(theta.shape)}")
        return theta.to(self.theta_norm.shift.dtype)

    def log_prob(self, theta: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of parameters ``(N, D)`` given contexts ``(N, ...)`` or one ``(...)``.

        Returns:
            Log-densities, shape ``(N,)``.
        """
        theta = self._check_theta(theta)
        c = prepare_context(context, self.context_features, self.context_norm, self.embedding)
        c = _broadcast(c, theta.shape[0])
        u = self.theta_norm(theta)
        return self._log_prob(u, c) + self.theta_norm.log_abs_det(self.features)

    def sample(
        self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw ``n`` samples: ``(n, D)`` for one context, ``(n, B, D)`` for ``B`` contexts.

        The noise for each context is drawn in turn from ``generator`` (or torch's global
        generator), so a batch of contexts gives the same draws as sampling each context
        alone, one after another, from the same generator.
        """
        return self.sample_and_log_prob(n, context, generator)[0]

    def sample_and_log_prob(
        self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Samples as in :meth:`sample` and their log-densities ``(n,)`` or ``(n, B)``."""
        c = prepare_context(context, self.context_features, self.context_norm, self.embedding)
        if c is None or c.ndim == 1:
            eps = self._noise(n, generator)
            shape = (n,)
        else:
            eps = torch.stack([self._noise(n, generator) for _ in range(c.shape[0])], dim=1)
            shape = (n, c.shape[0])
            c = c.expand(n, *c.shape).reshape(-1, c.shape[-1])
            eps = eps.reshape(-1, eps.shape[-1])
        u, log_q = self._sample(eps, _broadcast(c, eps.shape[0]))
        theta = self.theta_norm.inverse(u)
        log_q = log_q + self.theta_norm.log_abs_det(self.features)
        return theta.reshape(*shape, self.features), log_q.reshape(shape)

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        """Standard normal noise ``(n, D)`` for one context."""
        shift = self.theta_norm.shift
        return torch.randn(
            n, self.features, generator=generator, dtype=shift.dtype, device=shift.device
        )

    def _log_prob(self, u: Tensor, c: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _sample(self, eps: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log-density of a standard normal, summed over the last dimension."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * LOG_2PI)
