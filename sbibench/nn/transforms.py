"""Bijections for flows: univariate affine and spline maps, permutations, autoregressive and
coupling layers, and an LU-factored linear layer.

Every layer maps data towards noise: ``forward(x, c) -> (y, ladj)`` and
``inverse(y, c) -> (x, ladj)``, where ``ladj`` ``(N,)`` is always
:math:`\\log|\\det \\partial y / \\partial x|` of the forward map, evaluated at ``x``.
Univariate maps take elementwise inputs ``(...)`` and a tuple of parameter groups
``(..., s)``, one per entry ``s`` of their ``shapes``, and return elementwise ``ladj`` ``(...)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ResidualNet, mlp
from .made import MADE, split_params

__all__ = ["Affine", "Autoregressive", "Coupling", "LULinear", "Permutation", "Spline"]


class Affine(nn.Module):
    r"""Affine map :math:`y = x e^{s} + t` with a softly clamped log-scale.

    Parameters (two groups of size 1) are the shift :math:`t` and the raw log-scale, mapped to
    :math:`s = b \tanh(\text{raw} / b)` so that one layer scales by at most :math:`e^{\pm b}`.

    Arguments:
        bound: The log-scale bound :math:`b`.
    """

    shapes = (1, 1)

    def __init__(self, bound: float = 3.0) -> None:
        super().__init__()
        self.bound = bound

    def _unpack(self, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        return p[0][..., 0], self.bound * torch.tanh(p[1][..., 0] / self.bound)

    def forward(self, x: Tensor, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        shift, s = self._unpack(p)
        return x * s.exp() + shift, s

    def inverse(self, y: Tensor, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        shift, s = self._unpack(p)
        return (y - shift) * (-s).exp(), s


class Spline(nn.Module):
    r"""Monotonic rational-quadratic spline on :math:`[-B, B]`, identity outside.

    Parameters, three groups: :math:`K` raw bin widths, :math:`K` raw bin heights and
    :math:`K - 1` raw interior knot derivatives. The boundary derivatives are 1, so
    the map and its derivative are continuous with the identity tails.

    Arguments:
        bins: Number of bins :math:`K`.
        bound: Half-width :math:`B` of the spline's interval.
        min_width: Smallest bin width and height, as a fraction of :math:`2B`.
        min_derivative: Smallest knot derivative.
        raw_scale: Factor on the raw widths and heights before the softmax (nflows' coupling
            splines divide them by the square root of the conditioner's width, which keeps
            the first bins near uniform and slows their training).

    References:
        Neural Spline Flows (Durkan et al., 2019), https://arxiv.org/abs/1906.04032
    """

    def __init__(
        self,
        bins: int = 8,
        bound: float = 5.0,
        min_width: float = 1e-3,
        min_derivative: float = 1e-3,
        raw_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if bins < 2 or bins * min_width >= 1:
            raise ValueError(f"need bins >= 2 and bins * min_width < 1, got {bins}, {min_width}")
        self.bins, self.bound = bins, bound
        self.min_width, self.min_derivative = min_width, min_derivative
        self.raw_scale = raw_scale
        # softplus(0 + offset) + min_derivative == 1: a raw 0 gives the identity slope
        self._offset = math.log(math.expm1(1 - min_derivative))
        self.shapes = (bins, bins, bins - 1)

    def _edges(self, raw: Tensor) -> Tensor:
        # Knot positions (..., K + 1) from -B to B: the cumulative sum of a softmax (taken
        # by hand: torch's softmax is slow over a short last dimension), mixed with a
        # uniform ramp so that no bin is narrower than min_width * 2B.
        K, B, m = self.bins, self.bound, self.min_width
        e = (raw - raw.amax(-1, keepdim=True)).exp().cumsum(-1)
        ramp = torch.arange(1, K + 1, dtype=raw.dtype, device=raw.device) * (2 * B * m) - B
        edges = e / e[..., -1:] * (2 * B * (1 - K * m)) + ramp
        return F.pad(edges, (1, 0), value=-B)

    def _knots(self, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        d = F.softplus(p[2] + self._offset) + self.min_derivative
        widths, heights = p[0], p[1]
        if self.raw_scale != 1.0:
            widths, heights = widths * self.raw_scale, heights * self.raw_scale
        return self._edges(widths), self._edges(heights), F.pad(d, (1, 1), value=1.0)

    def _bin(self, knots: Tensor, v: Tensor, xs: Tensor, ys: Tensor, d: Tensor) -> tuple:
        k = (v[..., None] >= knots[..., 1:-1]).sum(-1, keepdim=True)
        idx = torch.cat((k, k + 1), dim=-1)
        x0, x1 = xs.gather(-1, idx).unbind(-1)
        y0, y1 = ys.gather(-1, idx).unbind(-1)
        d0, d1 = d.gather(-1, idx).unbind(-1)
        return x0, x1 - x0, y0, y1 - y0, d0, d1

    @staticmethod
    def _ladj(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor, den: Tensor) -> Tensor:
        t = xi * (1 - xi)
        num = d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()
        return 2 * s.log() + num.log() - 2 * den.log()

    def forward(self, x: Tensor, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        B = self.bound
        xs, ys, d = self._knots(p)
        inside = x.abs() < B
        xc = x.clamp(-B, B)  # keeps the unused branch finite (and its gradients NaN-free)
        x0, w, y0, h, d0, d1 = self._bin(xs, xc, xs, ys, d)
        s = h / w
        xi = ((xc - x0) / w).clamp(0, 1)
        t = xi * (1 - xi)
        den = s + (d0 + d1 - 2 * s) * t
        y = y0 + h * (s * xi.square() + d0 * t) / den
        ladj = self._ladj(xi, s, d0, d1, den)
        return torch.where(inside, y, x), torch.where(inside, ladj, 0.0)

    def inverse(self, y: Tensor, p: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        B = self.bound
        xs, ys, d = self._knots(p)
        inside = y.abs() < B
        yc = y.clamp(-B, B)
        x0, w, y0, h, d0, d1 = self._bin(ys, yc, xs, ys, d)
        s = h / w
        dy = yc - y0
        c2 = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * c2
        b = h * d0 - dy * c2
        c = -s * dy
        disc = (b.square() - 4 * a * c).clamp_min(0)
        xi = (2 * c / (-b - disc.sqrt())).clamp(0, 1)
        x = x0 + xi * w
        den = s + c2 * xi * (1 - xi)
        ladj = self._ladj(xi, s, d0, d1, den)
        return torch.where(inside, x, y), torch.where(inside, ladj, 0.0)


class Permutation(nn.Module):
    """Reorders features: ``y = x[:, order]``; volume preserving.

    Arguments:
        order: A permutation of ``range(D)``.
    """

    def __init__(self, order: Tensor) -> None:
        super().__init__()
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
        self.register_buffer("inverse_order", torch.argsort(self.order))

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.order], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y[:, self.inverse_order], y.new_zeros(y.shape[0])


class Autoregressive(nn.Module):
    r"""Autoregressive layer :math:`y_i = \tau(x_i; \phi_i(x_{<i}, c))` with a MADE conditioner.

    ":math:`<i`" is with respect to ``order``, which lets consecutive layers alternate
    orders without permutation layers. The forward map (density direction) is one MADE
    pass; the inverse is sequential, one prefix pass of the MADE per feature (see
    :meth:`MADE.autoregress`).

    Arguments:
        features: Number of features :math:`D`.
        context: Number of context features.
        univariate: The univariate map :math:`\tau` (:class:`Affine`, :class:`Spline`).
        hidden_features: Hidden widths of the MADE.
        activation: Activation module class.
        order: Autoregressive order, a permutation of ``range(D)`` (default: natural).
    """

    def __init__(
        self,
        features: int,
        context: int,
        univariate: nn.Module,
        hidden_features: Sequence[int] = (50, 50),
        activation: type[nn.Module] = nn.ReLU,
        order: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.univariate = univariate
        shapes = univariate.shapes
        self.made = MADE(features, context, shapes, hidden_features, activation, order)

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, ladj = self.univariate(x, self.made(x, c))
        return y, ladj.sum(-1)

    def inverse(self, y: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ladjs = []

        def step(j: int, params: tuple[Tensor, ...]) -> Tensor:
            xj, ladj = self.univariate.inverse(y[:, j], params)
            ladjs.append(ladj)
            return xj

        x = self.made.autoregress(step, c, y.shape[0])
        return x, torch.stack(ladjs, dim=-1).sum(-1)


class Coupling(nn.Module):
    r"""Coupling layer (Dinh et al., 2017): one set of features conditions the map of the rest.

    By default, with ``k = D // 2``, the first ``k`` features are kept and condition the map
    of the last ``D - k`` (``reverse=True``: the last ``k`` are kept and condition the first
    ``D - k``). ``mapped`` names the mapped features instead (nflows alternates even and odd
    ones). With ``D = 1`` the single feature is mapped conditioned on the context only.

    Arguments:
        features: Number of features :math:`D`.
        context: Number of context features.
        univariate: The univariate map (:class:`Affine` gives RealNVP).
        reverse: Which half is kept (when ``mapped`` is None).
        hidden_features: Hidden widths of the conditioner MLP; with ``residual_blocks``, its
            first entry is the residual net's width.
        activation: Activation module class.
        mapped: Indices of the mapped features (None: the halves above).
        residual_blocks: 0 for an MLP on the kept features and the context side by side; else
            a :class:`~sbibench.nn.base.ResidualNet` of that many blocks whose blocks the
            context gates (the conditioner of sbi's neural spline flow).
    """

    def __init__(
        self,
        features: int,
        context: int,
        univariate: nn.Module,
        reverse: bool = False,
        hidden_features: Sequence[int] = (50, 50),
        activation: type[nn.Module] = nn.ReLU,
        mapped: Sequence[int] | None = None,
        residual_blocks: int = 0,
    ) -> None:
        super().__init__()
        if mapped is None:
            k = features // 2
            mapped = range(features - k) if reverse else range(k, features)
        mapped_index = torch.as_tensor(sorted(mapped), dtype=torch.long)
        taken = set(mapped_index.tolist())
        kept = torch.tensor([i for i in range(features) if i not in taken], dtype=torch.long)
        self.register_buffer("mapped_index", mapped_index, persistent=False)
        self.register_buffer("kept_index", kept, persistent=False)
        self.register_buffer("order", torch.cat((kept, mapped_index)).argsort(), persistent=False)
        self.univariate = univariate
        self.mapped = len(mapped_index)
        out = self.mapped * sum(univariate.shapes)
        self.residual = residual_blocks > 0
        if self.residual:
            hidden = hidden_features[0]
            self.net = ResidualNet(len(kept), out, hidden, residual_blocks, activation, context)
        else:
            self.net = mlp(len(kept) + context, out, hidden_features, activation)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.kept_index], x[:, self.mapped_index]

    def _join(self, kept: Tensor, mapped: Tensor) -> Tensor:
        return torch.cat((kept, mapped), dim=-1)[:, self.order]

    def _params(self, kept: Tensor, c: Tensor | None) -> tuple[Tensor, ...]:
        if self.residual:
            h = self.net(kept, c)
        else:
            h = self.net(kept if c is None else torch.cat((kept, c), dim=-1))
        return split_params(h, self.mapped, self.univariate.shapes)

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, mapped = self._split(x)
        y, ladj = self.univariate(mapped, self._params(kept, c))
        return self._join(kept, y), ladj.sum(-1)

    def inverse(self, y: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, mapped = self._split(y)
        x, ladj = self.univariate.inverse(mapped, self._params(kept, c))
        return self._join(kept, x), ladj.sum(-1)


class LULinear(nn.Module):
    r"""An invertible linear map :math:`y = L U x + b`, starting as the identity (nflows'
    ``LULinear``, which sbi's neural spline flow puts after every coupling layer so that each
    layer mixes the features).

    :math:`L` is unit lower triangular, :math:`U` upper triangular with diagonal
    :math:`\operatorname{softplus}(r) + 10^{-3}`, so :math:`\log|\det| = \sum \log U_{ii}`.

    Arguments:
        features: Number of features :math:`D`.
    """

    def __init__(self, features: int, min_diagonal: float = 1e-3) -> None:
        super().__init__()
        self.min_diagonal = min_diagonal
        self.lower = nn.Parameter(torch.zeros(features, features))  # strictly lower part used
        self.upper = nn.Parameter(torch.zeros(features, features))  # strictly upper part used
        # softplus(r) + min_diagonal == 1 at the start
        self.raw_diagonal = nn.Parameter(
            torch.full((features,), math.log(math.expm1(1 - min_diagonal)))
        )
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self) -> tuple[Tensor, Tensor, Tensor]:
        diagonal = F.softplus(self.raw_diagonal) + self.min_diagonal
        lower = self.lower.tril(-1) + torch.eye(len(diagonal), dtype=diagonal.dtype)
        upper = self.upper.triu(1) + torch.diag(diagonal)
        return lower, upper, diagonal.log().sum()

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lower, upper, ladj = self._factors()
        return x @ upper.T @ lower.T + self.bias, ladj.expand(x.shape[0])

    def inverse(self, y: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lower, upper, ladj = self._factors()
        z = torch.linalg.solve_triangular(lower, (y - self.bias).T, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, z, upper=True).T, ladj.expand(y.shape[0])
