"""Mixture density network: a conditional mixture of full-covariance Gaussians."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import LOG_2PI, Estimator, mlp

__all__ = ["MDN"]


class MDN(Estimator):
    r"""Mixture density network (Bishop, 1994) with full-covariance components.

    .. math:: q(\theta \mid x) = \sum_k \pi_k(x)\, \mathcal{N}(\theta; \mu_k(x), (U_k^\top U_k)^{-1})

    An MLP maps the (embedded) context to mixture logits, means and upper-triangular
    precision factors :math:`U_k` with a positive diagonal (``exp`` of the raw values), so
    the log-density needs one triangular matrix-vector product per component and no
    solve; sampling solves one triangular system per sample. All of this acts on
    standardised parameters.

    Arguments:
        features: Parameter dimension :math:`D`.
        context: Context dimension :math:`C` after embedding (0: unconditional, the
            mixture's parameters are then learned directly).
        components: Number of mixture components :math:`K`.
        hidden_features: Hidden widths of the MLP.
        activation: Activation module class.
        embedding: Optional embedding net for raw contexts.

    Example:
        >>> mdn = MDN(2, 3, components=4)
        >>> mdn.log_prob(torch.randn(5, 2), torch.randn(5, 3)).shape
        torch.Size([5])
        >>> mdn.sample(6, torch.randn(3)).shape
        torch.Size([6, 2])
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        components: int = 10,
        hidden_features: Sequence[int] = (50, 50),
        activation: type[nn.Module] = nn.ReLU,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__(features, context, embedding)
        D, K = features, components
        self.components = K
        self._sizes = [K, K * D, K * D, K * (D * (D - 1) // 2)]
        out = sum(self._sizes)
        if context > 0:
            self.net = mlp(context, out, hidden_features, activation)
        else:
            self.register_parameter("net", None)
            self.params = nn.Parameter(torch.randn(out) * 0.1)
        rows, cols = torch.triu_indices(D, D, offset=1)  # packed order of the factors
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)

    def _params(self, c: Tensor | None, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Log-weights ``(N, K)``, means and log-diagonals ``(N, K, D)``, and the strictly
        upper-triangular entries of the factors, packed row by row, ``(N, K, D(D-1)/2)``."""
        D, K = self.features, self.components
        h = self.params.expand(n, -1) if c is None else self.net(c)
        logits, mu, log_diag, off = h.split(self._sizes, dim=-1)
        log_w = torch.log_softmax(logits, dim=-1)
        return (
            log_w,
            mu.unflatten(-1, (K, D)),
            log_diag.unflatten(-1, (K, D)),
            off.unflatten(-1, (K, -1)),
        )

    def _log_prob(self, theta: Tensor, c: Tensor | None) -> Tensor:
        return self._mixture(theta, *self._params(c, theta.shape[0]))

    def _mixture(
        self, theta: Tensor, log_w: Tensor, mu: Tensor, log_diag: Tensor, off: Tensor
    ) -> Tensor:
        # z = U (theta - mu) straight from the packed factors: the (N, K, D, D) matrices,
        # a gigabyte at D = 50 and N = 10,000, are never built.
        diff = theta[:, None, :] - mu  # (N, K, D)
        z = log_diag.exp() * diff
        if self.features > 1:
            z = z.index_add(-1, self.rows, off * diff[..., self.cols])
        log_n = log_diag.sum(-1) - 0.5 * (z.square().sum(-1) + self.features * LOG_2PI)
        return torch.logsumexp(log_w + log_n, dim=-1)

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        """A uniform (component choice) and ``D`` standard normals per sample: ``(n, D + 1)``."""
        shift = self.theta_norm.shift
        kw = {"generator": generator, "dtype": shift.dtype, "device": shift.device}
        return torch.cat((torch.rand(n, 1, **kw), torch.randn(n, self.features, **kw)), dim=-1)

    def _sample(self, eps: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        n = eps.shape[0]
        D = self.features
        log_w, mu, log_diag, off = self._params(c, n)
        cdf = log_w.detach().exp().cumsum(-1)
        k = (eps[:, :1] > cdf[:, :-1]).sum(-1)  # inverse-CDF draw of the component
        idx = torch.arange(n, device=eps.device)
        u = torch.diag_embed(log_diag[idx, k].exp())  # the chosen factors only, (N, D, D)
        u = u.index_put((idx[:, None], self.rows, self.cols), off[idx, k]) if D > 1 else u
        x = torch.linalg.solve_triangular(u, eps[:, 1:, None], upper=True)[..., 0]
        theta = mu[idx, k] + x
        return theta, self._mixture(theta, log_w, mu, log_diag, off)
