"""Two moons: a noisy half-circle shifted by a folded rotation of theta (sbibm's two_moons).

    theta ~ U(-b, b)^2,   a ~ U(-pi/2, pi/2),   r ~ N(mu, sigma^2),
    p = (r cos a + c, r sin a),   x = p + (-|u|, v),
    u = (theta_1 + theta_2) / sqrt 2,   v = (-theta_1 + theta_2) / sqrt 2

(b = 1, mu = 0.1, sigma = 0.01, c = 0.25 in sbibm; checked against sbibm 1.1.0's wheel,
``sbibm/tasks/two_moons/task.py``: ``get_simulator`` and ``_map_fun``, which rotates by -pi/4).

**Likelihood.** The map (a, r) -> q = p - (c, 0) = r (cos a, sin a) is one to one from
(-pi/2, pi/2) x R onto the plane minus the line q_1 = 0, with |Jacobian| = |r|, and
sign(r) = sign(q_1) because cos a > 0. So p has density
N(r; mu, sigma^2) / (pi |q|), r = sign(q_1) |q|, and p(x | theta) is that density at
q = (x_1 + |u| - c, x_2 - v). (sbibm's ``_likelihood`` keeps only the radial factor and sets
q_1 < 0 to -inf; it lacks the 1 / (pi |q|) Jacobian.)

**Posterior by inversion.** theta -> (u, v) is a rotation and, on either half-plane sign(u) = s,
(u, v) -> p = (x_1 + |u|, x_2 - v) is a reflection plus a shift: both have |det| = 1. Drawing
(a, r) from the simulator, a sign s = +-1 with probability 1/2, and setting
u = s (p_1 - x_1), v = x_2 - p_2 (rejecting p_1 < x_1, which no theta reaches) gives theta with
density p(x | theta) / 2 on the plane; rejecting draws outside the prior box leaves exactly the
posterior. With P the probability that a proposal is kept, the box integral of p(x | theta)
is 2 P, the evidence is 2 P / (2b)^2 and p(theta | x) = p(x | theta) / (2 P) on the box.

**Normaliser and moments.** For fixed a, theta is affine in r, so the box and p_1 >= x_1 cut
r to one interval, and the r-integrals of 1, theta and theta theta^T against N(mu, sigma^2) are
closed form (truncated-normal moments). The remaining integral over a is done by adaptive
Gauss-Kronrod quadrature (``scipy.integrate.quad_vec``, relative tolerance 1e-11): ``log_prob``,
``mean`` and ``covariance_matrix`` are exact to that tolerance, no normaliser is estimated by
sampling.

References:
    Greenberg, Nonnenmacher and Macke (2019), Automatic posterior transformation, ICML.
    Lueckmann et al. (2021), Benchmarking simulation-based inference, AISTATS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Uniform, constraints

from sbibench.models.common import DTYPE, Family, check_data, check_theta, positive, real

__all__ = ["TwoMoons", "TwoMoonsPosterior", "TWO_MOONS"]

SQRT2 = math.sqrt(2.0)
_EMPTY = torch.Size()


@dataclass(frozen=True)
class TwoMoons:
    """sbibm's two moons with prior half-width ``bound`` and radius N(radius_mean, radius_std^2).

    Arguments:
        bound: half-width b of the prior box [-b, b]^2.
        radius_mean: mean mu of the radius.
        radius_std: standard deviation sigma of the radius.
        offset: shift c of the half-circle along the first axis.

    Example:
        >>> model = TwoMoons(1.0, 0.1, 0.01, 0.25)
        >>> posterior = model.posterior(torch.tensor([-0.64, 0.16], dtype=torch.float64))
        >>> posterior.sample((4,)).shape, posterior.mean.shape
        (torch.Size([4, 2]), torch.Size([2]))
    """

    bound: float
    radius_mean: float
    radius_std: float
    offset: float
    parameter_names: tuple[str, ...] = ("theta_1", "theta_2")
    data_dim: int = 2

    @property
    def prior(self) -> Independent:
        high = torch.full((2,), self.bound, dtype=DTYPE)
        return Independent(Uniform(-high, high), 1)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 2) -> (N, 2): the angle a, then the radius r, then the shift by theta."""
        theta = check_theta(theta, 2)
        n = theta.shape[0]
        a = (torch.rand(n, generator=generator, dtype=DTYPE) - 0.5) * math.pi
        r = self.radius_mean + self.radius_std * torch.randn(n, generator=generator, dtype=DTYPE)
        u = (theta[:, 0] + theta[:, 1]) / SQRT2
        v = (-theta[:, 0] + theta[:, 1]) / SQRT2
        return torch.stack([r * a.cos() + self.offset - u.abs(), r * a.sin() + v], -1)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, 2) and (2,) or (N, 2) -> (N,): log N(r; mu, sigma^2) - log pi - log |q|."""
        theta = check_theta(theta, 2)
        x = check_data(x, 2, batch=theta.shape[0])
        u = (theta[:, 0] + theta[:, 1]) / SQRT2
        v = (-theta[:, 0] + theta[:, 1]) / SQRT2
        q1 = x[..., 0] + u.abs() - self.offset
        q2 = x[..., 1] - v
        rho = torch.hypot(q1, q2)
        r = torch.where(q1 < 0, -rho, rho)
        z = (r - self.radius_mean) / self.radius_std
        log_radius = -0.5 * z**2 - math.log(self.radius_std * math.sqrt(2 * math.pi))
        return log_radius - math.log(math.pi) - rho.log()

    def summary(self, x: Tensor) -> Tensor:
        """(N, 2) -> the data themselves."""
        return check_data(x, 2).reshape(-1, 2)

    def posterior(self, x: Tensor) -> TwoMoonsPosterior:
        """(2,) or (K, 2) -> the exact posterior, batch shape () or (K,), event (2,)."""
        return TwoMoonsPosterior(self, check_data(x, 2))

    def invert(self, x: Tensor, a: Tensor, r: Tensor, sign: Tensor) -> tuple[Tensor, Tensor]:
        """theta (..., 2) from the data (..., 2), the angle, the radius and the branch sign
        (+1 or -1), and whether such a theta exists (p_1 >= x_1)."""
        p1 = r * a.cos() + self.offset
        p2 = r * a.sin()
        u = sign * (p1 - x[..., 0])
        v = x[..., 1] - p2
        return torch.stack([(u - v) / SQRT2, (u + v) / SQRT2], -1), p1 >= x[..., 0]


class TwoMoonsPosterior(Distribution):
    """The exact two-moons posterior given data (..., 2): inversion sampling, exact density.

    ``sample`` draws from the global RNG; ``log_prob``, ``mean``, ``variance`` and
    ``covariance_matrix`` come from one quadrature per observation, run on first use.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, model: TwoMoons, x: Tensor) -> None:
        self.model, self.x = model, x
        self._moments: tuple[Tensor, Tensor, Tensor] | None = None
        super().__init__(x.shape[:-1], torch.Size([2]), validate_args=False)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.interval(-self.model.bound, self.model.bound), 1)

    def sample(self, sample_shape: torch.Size = _EMPTY) -> Tensor:
        n = math.prod(sample_shape)
        x = self.x.reshape(-1, 2)  # (B, 2)
        out = torch.empty(n, len(x), 2, dtype=DTYPE)
        filled = [0] * len(x)
        proposals = max(n, 1000)
        for _ in range(10_000):
            if min(filled) >= n:
                return out.reshape(*sample_shape, *self.x.shape)
            a = (torch.rand(proposals, len(x), dtype=DTYPE) - 0.5) * math.pi
            r = self.model.radius_mean + self.model.radius_std * torch.randn(
                proposals, len(x), dtype=DTYPE
            )
            sign = torch.where(torch.rand(proposals, len(x), dtype=DTYPE) < 0.5, 1.0, -1.0)
            theta, exists = self.model.invert(x, a, r, sign)
            keep = exists & (theta.abs() < self.model.bound).all(-1)
            for b in range(len(x)):
                need = n - filled[b]
                if need > 0:
                    draws = theta[keep[:, b], b][:need]
                    out[filled[b] : filled[b] + len(draws), b] = draws
                    filled[b] += len(draws)
        raise ValueError(
            "two_moons posterior: fewer than one in 10^7 proposals lands in the prior box; the "
            "data lie outside what the simulator reaches from the prior"
        )

    def _exact(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._moments is None:
            self._moments = _quadrature(self.model, self.x.reshape(-1, 2).numpy())
        return self._moments

    def log_prob(self, value: Tensor) -> Tensor:
        log_acceptance = self._exact()[0].reshape(self.batch_shape)
        shape = torch.broadcast_shapes(value.shape, self.x.shape)
        theta = value.expand(shape).reshape(-1, 2).to(DTYPE)
        x = self.x.expand(shape).reshape(-1, 2)
        log_likelihood = self.model.log_likelihood(theta, x).reshape(shape[:-1])
        density = log_likelihood - math.log(2.0) - log_acceptance
        inside = (value.abs() <= self.model.bound).all(-1).expand(shape[:-1])
        return torch.where(inside, density, torch.full_like(density, -math.inf))

    @property
    def mean(self) -> Tensor:
        return self._exact()[1].reshape(*self.batch_shape, 2)

    @property
    def covariance_matrix(self) -> Tensor:
        return self._exact()[2].reshape(*self.batch_shape, 2, 2)

    @property
    def variance(self) -> Tensor:
        return self.covariance_matrix.diagonal(dim1=-2, dim2=-1)


def _radius_moments(
    low: np.ndarray, high: np.ndarray, mu: float, sigma: float
) -> tuple[np.ndarray, ...]:
    """int_low^high r^k N(r; mu, sigma^2) dr for k = 0, 1, 2 (0 where low >= high)."""
    from scipy.special import ndtr

    alpha = np.clip((low - mu) / sigma, -40.0, 40.0)
    beta = np.clip((high - mu) / sigma, -40.0, 40.0)
    beta = np.maximum(alpha, beta)
    flip = alpha > 0  # the mass of an upper-tail interval, without Phi rounding to 1
    mass = np.where(flip, ndtr(-alpha) - ndtr(-beta), ndtr(beta) - ndtr(alpha))
    pdf_a, pdf_b = np.exp(-0.5 * alpha**2), np.exp(-0.5 * beta**2)
    first = (pdf_a - pdf_b) / math.sqrt(2 * math.pi)  # int z phi(z)
    second = mass + (alpha * pdf_a - beta * pdf_b) / math.sqrt(2 * math.pi)  # int z^2 phi
    m1 = mu * mass + sigma * first
    m2 = mu**2 * mass + 2 * mu * sigma * first + sigma**2 * second
    return mass, m1, m2


def _integrand(model: TwoMoons, x: np.ndarray, a: float) -> np.ndarray:
    """(B, 6): the integrals over r, summed over both branches with weight 1/2 and times the
    angle's density 1/pi, of (1, theta_1, theta_2, theta_1^2, theta_1 theta_2, theta_2^2)."""
    cos, sin = math.cos(a), math.sin(a)
    total = np.zeros((len(x), 6))
    for sign in (1.0, -1.0):
        # theta_i = slope_i r + intercept_i on this branch (see TwoMoons.invert)
        slope = np.array([(sign * cos + sin) / SQRT2, (sign * cos - sin) / SQRT2])
        base = sign * (model.offset - x[:, 0])
        intercept = np.stack([(base - x[:, 1]) / SQRT2, (base + x[:, 1]) / SQRT2], -1)
        low = np.full(len(x), (x[:, 0] - model.offset) / cos)  # p_1 >= x_1
        high = np.full(len(x), np.inf)
        for i in range(2):
            if slope[i] != 0:
                ends = np.stack([-model.bound - intercept[:, i], model.bound - intercept[:, i]])
                ends = ends / slope[i] if slope[i] > 0 else ends[::-1] / slope[i]
                low, high = np.maximum(low, ends[0]), np.minimum(high, ends[1])
            else:
                inside = np.abs(intercept[:, i]) < model.bound
                high = np.where(inside, high, -np.inf)
        m0, m1, m2 = _radius_moments(low, high, model.radius_mean, model.radius_std)
        s1, s2 = slope
        c1, c2 = intercept[:, 0], intercept[:, 1]
        total += np.stack(
            [
                m0,
                s1 * m1 + c1 * m0,
                s2 * m1 + c2 * m0,
                s1 * s1 * m2 + 2 * s1 * c1 * m1 + c1 * c1 * m0,
                s1 * s2 * m2 + (s1 * c2 + s2 * c1) * m1 + c1 * c2 * m0,
                s2 * s2 * m2 + 2 * s2 * c2 * m1 + c2 * c2 * m0,
            ],
            -1,
        )
    return total / (2 * math.pi)


def _quadrature(model: TwoMoons, x: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """log acceptance probability (B,), mean (B, 2) and covariance (B, 2, 2) for data (B, 2)."""
    from scipy.integrate import quad_vec

    half = math.pi / 2
    integral, _ = quad_vec(
        lambda a: _integrand(model, x, a), -half, half, epsabs=0.0, epsrel=1e-11, limit=20_000
    )
    mass = integral[:, 0]
    if (mass <= 0).any():
        raise ValueError("two_moons posterior: no theta in the prior box explains these data")
    moments = integral[:, 1:] / mass[:, None]
    mean = moments[:, :2]
    second = np.stack([moments[:, [2, 3]], moments[:, [3, 4]]], -2)
    covariance = second - mean[:, :, None] * mean[:, None, :]
    return (
        torch.from_numpy(np.log(mass)),
        torch.from_numpy(mean.copy()),
        torch.from_numpy(covariance),
    )


TWO_MOONS = Family(
    prior={"bound": positive("half-width b of the uniform prior box [-b, b]^2")},
    simulator={
        "radius_mean": positive("mean of the radius r"),
        "radius_std": positive("standard deviation of the radius r"),
        "offset": real("shift c of the half-circle along the first data axis"),
    },
    build=lambda prior, simulator: TwoMoons(
        prior["bound"], simulator["radius_mean"], simulator["radius_std"], simulator["offset"]
    ),
)
