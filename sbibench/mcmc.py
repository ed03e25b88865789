"""Vectorised MCMC over many chains: slice sampling, HMC and MALA, SIR initialisation, R-hat, ESS.

Every sampler advances all chains at once, with one batched log-density call per step (the
chains of several targets, e.g. several observations, advance together: ``groups`` says which
target each chain follows). The log-density is ``log_prob(points, chains)``: points ``(K, D)``
and the indices ``(K,)`` of the chains they belong to (the subset of chains still busy in a
slice step), returning ``(K,)``. A sampler works in coordinates whitened per group by the
chains' mean and covariance, estimated at the start and after one and two thirds of warm-up
(an affine change of variables: the target is unchanged, only the proposals adapt), and
adaptation stops with warm-up, so the kept draws are a valid Markov chain. The pooled
covariance spans every mode the chains found, so slice steps may jump between modes of equal
height; gradient-based moves stay local, and split R-hat then flags chains stuck apart.

- ``slice``: per-coordinate slice sampling with stepping out and shrinkage (Neal 2003).
- ``hmc``: Hamiltonian Monte Carlo (Neal 2011) with ``leapfrog_steps`` steps and a step size
  tuned per group by dual averaging (Hoffman & Gelman 2014) to accept 65%, jittered per chain
  and transition by a uniform factor in [0.5, 1.5] (no periodic orbits on Gaussian targets).
- ``mala``: the Metropolis-adjusted Langevin algorithm, HMC with one leapfrog step, tuned to
  accept 57.4% (Roberts & Rosenthal 1998).

Diagnostics: split R-hat and the multi-chain effective sample size (Gelman et al. 2013, BDA3
ch. 11; Geyer's initial monotone sequence), per group and coordinate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from sbibench.autodiff import vjp
from sbibench.checks import whole

__all__ = [
    "MCMCResult",
    "SAMPLERS",
    "ess",
    "importance_ess",
    "sample_mcmc",
    "sir_init",
    "split_rhat",
]

LogDensity = Callable[[Tensor, Tensor], Tensor]  # points (K, D), chain indices (K,) -> (K,)
SAMPLERS = ("slice", "hmc", "mala")
_TARGET = {"hmc": 0.65, "mala": 0.574}


@dataclasses.dataclass
class MCMCResult:
    """The kept draws of every chain and their diagnostics.

    Attributes:
        chains: (C, S, D) kept draws, chain by chain.
        groups: (C,) the group (target) of each chain, 0..G-1.
        rhat: (G, D) split R-hat per group and coordinate; near 1 for mixed chains.
        ess: (G, D) effective sample size per group and coordinate.
        acceptance: (G,) mean acceptance probability after warm-up (1 for slice).
        evaluations: batched log-density calls made.
    """

    chains: Tensor
    groups: Tensor
    rhat: Tensor
    ess: Tensor
    acceptance: Tensor
    evaluations: int

    def samples(self, n: int, group: int = 0) -> Tensor:
        """(n, D) draws of one group, interleaved across its chains (draw 1 of every chain,
        then draw 2, ...), so a prefix is balanced over chains."""
        draws = self.chains[self.groups == group].transpose(0, 1).reshape(-1, self.chains.shape[-1])
        if draws.shape[0] < n:
            raise ValueError(f"n={n} exceeds the {draws.shape[0]} draws kept for group {group}")
        return draws[:n]


def sir_init(
    candidates: Tensor, log_weights: Tensor, num_chains: int, generator: torch.Generator | None
) -> Tensor:
    """Sampling-importance-resampling, systematic (with replacement).

    The ``num_chains`` starting points are the candidates at C evenly spaced positions, one
    uniform offset for all, on the weights' cumulative sum (Kitagawa 1996), in random order.
    A run of consecutive candidates holding a share w of the weight then starts between w C - 1
    and w C + 1 chains, so the candidates are first ordered along the leading principal axis of
    their weighted covariance: modes that lie apart along it become such runs, and each starts
    its share of the chains up to the importance weights' error (small when `importance_ess`
    is well above ``num_chains``), without the binomial noise of independent draws (sd
    sqrt(w (1 - w) / C) of the share, 0.022 on an even two-mode split at 500 chains). In the
    candidates' own (random) order a mode's count carried about that noise: two_moons'
    crescents, 2,000 chains, a share 0.4905 for a weight of 0.4977. Picking the ``num_chains``
    best candidates without replacement would be worse still: once the candidates of real
    weight run out it takes the next best, which flattens the modes' balance towards the
    proposal's and starts chains at the edges of the modes. A candidate picked twice starts two
    chains at one point; their first slice sweep separates them.

    Arguments:
        candidates: (K, D) draws from a proposal, typically the prior; K < 2^24.
        log_weights: (K,) log target - log proposal, up to a constant (NaN counts as -inf).
        num_chains: how many starting points to draw, C >= 1.
        generator: source of the offset and the order.

    Returns:
        (C, D) starting points.

    Raises:
        ValueError: no candidate has a finite weight.
    """
    whole(num_chains, "num_chains", 1)
    w = torch.nan_to_num(log_weights.double(), nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    if not torch.isfinite(w).any():
        raise ValueError("no candidate has a finite log-weight: cannot start the chains")
    p = torch.softmax(torch.where(torch.isfinite(w), w, -math.inf), 0)
    order = _principal_order(candidates.double(), p)
    candidates, p = candidates[order], p[order]
    cumulative = p.cumsum(0)
    cumulative = cumulative / cumulative[-1]  # the last position (< 1) then falls inside
    offset = torch.rand(1, generator=generator, dtype=torch.float64)
    positions = (offset + torch.arange(num_chains, dtype=torch.float64)) / num_chains
    picked = torch.searchsorted(cumulative, positions)  # first index whose sum reaches each
    return candidates[picked[torch.randperm(num_chains, generator=generator)]]


def _principal_order(points: Tensor, p: Tensor) -> Tensor:
    """The order of points (K, D) along the leading principal axis of their p-weighted
    covariance: modes that lie apart along it become contiguous runs of candidates."""
    centred = points.reshape(len(points), -1) - p @ points.reshape(len(points), -1)
    cov = (p[:, None] * centred).T @ centred
    axis = torch.linalg.eigh(cov).eigenvectors[:, -1]
    return torch.argsort(centred @ axis, stable=True)


def importance_ess(log_weights: Tensor) -> Tensor:
    """Kish's effective sample size of importance weights, (..., K) -> (...): (sum w)^2 /
    sum w^2, between 1 and K (0 when no weight is positive; NaN counts as -inf)."""
    w = torch.nan_to_num(log_weights.double(), nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    w = (w - w.amax(-1, keepdim=True)).exp().nan_to_num(0.0)
    return w.sum(-1).square() / w.square().sum(-1).clamp_min(1e-300)


def split_rhat(chains: Tensor) -> Tensor:
    """Split R-hat (Gelman et al. 2013): (C, S, D) with S >= 4 -> (D,)."""
    if chains.ndim != 3 or chains.shape[1] < 4:
        raise ValueError(f"chains must be (C, S >= 4, D), got {tuple(chains.shape)}")
    half = chains.shape[1] // 2
    x = torch.cat([chains[:, :half], chains[:, -half:]]).double()
    within = x.var(1).mean(0)
    between = half * x.mean(1).var(0)
    var_plus = (half - 1) / half * within + between / half
    return (var_plus / within).sqrt()


def ess(chains: Tensor) -> Tensor:
    """Multi-chain effective sample size (Stan's estimator, no rank normalisation).

    Autocovariances by FFT per chain, combined over chains through the variance estimate of
    split R-hat; summed over Geyer's initial positive, monotone sequence of pairs.

    Arguments:
        chains: (C, S, D), S >= 4.

    Returns:
        (D,), between 0 and about C * S * log10(C * S).
    """
    if chains.ndim != 3 or chains.shape[1] < 4:
        raise ValueError(f"chains must be (C, S >= 4, D), got {tuple(chains.shape)}")
    c, n, _ = chains.shape
    x = chains.double() - chains.double().mean(1, keepdim=True)
    spectrum = torch.fft.rfft(x, n=2 * n, dim=1)
    acov = torch.fft.irfft(spectrum * spectrum.conj(), n=2 * n, dim=1)[:, :n] / n  # (C, S, D)
    within = (acov[:, 0] * n / (n - 1)).mean(0)
    between = chains.double().mean(1).var(0) if c > 1 else torch.zeros_like(within)
    var_plus = (n - 1) / n * within + between
    rho = 1 - (within - acov.mean(0)) / var_plus  # (S, D)
    rho[0] = 1.0
    m = n // 2
    pairs = rho[0 : 2 * m : 2] + rho[1 : 2 * m : 2]
    positive = torch.cumprod((pairs > 0).double(), 0)
    pairs = torch.cummin(pairs * positive, 0).values
    tau = (-1 + 2 * pairs.sum(0)).clamp_min(1 / math.log10(max(c * n, 10)))
    return c * n / tau


class _Whitening:
    """Per-group affine map u = mean + L z, from the chains' mean and covariance."""

    def __init__(self, u: Tensor, groups: Tensor, num_groups: int) -> None:
        d = u.shape[1]
        eye = torch.eye(d, dtype=u.dtype)
        means, factors = [], []
        for g in range(num_groups):
            x = u[groups == g]
            mean = x.mean(0)
            var = x.var(0) if x.shape[0] > 1 else torch.ones(d, dtype=u.dtype)
            var = torch.where(var > 1e-12, var, torch.ones_like(var))
            cov = torch.cov(x.T).reshape(d, d) if x.shape[0] > 2 * d else torch.diag(var)
            cov = 0.9 * cov + 0.1 * torch.diag(var) + 1e-9 * var.mean() * eye  # shrinkage
            factor, info = torch.linalg.cholesky_ex(cov)
            means.append(mean)
            factors.append(factor if info == 0 else torch.diag(var.sqrt()))
        self.mean = torch.stack(means)[groups]  # (C, D)
        self.factor = torch.stack(factors)[groups]  # (C, D, D)

    def to_u(self, z: Tensor, rows: Tensor) -> Tensor:
        return self.mean[rows] + (self.factor[rows] @ z.unsqueeze(-1)).squeeze(-1)

    def to_z(self, u: Tensor) -> Tensor:
        centred = (u - self.mean).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.factor, centred, upper=False).squeeze(-1)


class _Counter:
    """The log-density in whitened coordinates, counting batched calls."""

    def __init__(self, log_prob: LogDensity, whitening: _Whitening) -> None:
        self.log_prob, self.whitening, self.calls = log_prob, whitening, 0

    def __call__(self, z: Tensor, rows: Tensor) -> Tensor:
        self.calls += 1
        value = self.log_prob(self.whitening.to_u(z, rows), rows).double()
        return torch.nan_to_num(value, nan=-math.inf)

    def value_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        rows = torch.arange(z.shape[0])
        with torch.enable_grad():
            value, grad = vjp(lambda y: self(y, rows), z.detach(), torch.ones(z.shape[0]).double())
        return value.detach(), torch.nan_to_num(grad.detach(), nan=0.0)


def _rand(n: int, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64)


def _slice_sweep(f: _Counter, z: Tensor, fz: Tensor, width: float, max_steps: int, gen) -> None:
    """One sweep of per-coordinate slice sampling (Neal 2003, figs. 3 and 5), in place."""
    c, d = z.shape
    for k in range(d):
        log_y = fz + torch.log(_rand(c, gen).clamp_min(1e-300))
        left = z[:, k] - width * _rand(c, gen)
        right = left + width
        steps_left = torch.floor(max_steps * _rand(c, gen))
        steps_right = max_steps - 1 - steps_left
        out_left, out_right = steps_left > 0, steps_right > 0
        while out_left.any() or out_right.any():  # step out both ends in one call
            il, ir = out_left.nonzero().squeeze(1), out_right.nonzero().squeeze(1)
            points = torch.cat([z[il], z[ir]])
            points[: len(il), k], points[len(il) :, k] = left[il], right[ir]
            inside = f(points, torch.cat([il, ir])) > torch.cat([log_y[il], log_y[ir]])
            left[il] -= width * inside[: len(il)]
            right[ir] += width * inside[len(il) :]
            steps_left[il] -= 1
            steps_right[ir] -= 1
            out_left[il] = inside[: len(il)] & (steps_left[il] > 0)
            out_right[ir] = inside[len(il) :] & (steps_right[ir] > 0)
        pending, start = torch.ones(c, dtype=torch.bool), z[:, k].clone()
        for _ in range(200):  # shrinkage; the interval closes on the current point
            draw = _rand(c, gen)
            rows = pending.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            proposal = left[rows] + draw[rows] * (right[rows] - left[rows])
            points = z[rows].clone()
            points[:, k] = proposal
            value = f(points, rows)
            ok = value > log_y[rows]
            z[rows[ok], k], fz[rows[ok]] = proposal[ok], value[ok]
            pending[rows[ok]] = False
            bad, proposal = rows[~ok], proposal[~ok]
            below = proposal < start[bad]
            left[bad[below]], right[bad[~below]] = proposal[below], proposal[~below]


def _hmc_step(f: _Counter, state: tuple, eps: Tensor, steps: int, gen) -> tuple[tuple, Tensor]:
    """One HMC transition of every chain with per-chain step sizes eps (C,); identity mass."""
    z, fz, gz = state
    p = torch.randn(z.shape, generator=gen, dtype=z.dtype)
    h0 = fz - 0.5 * p.square().sum(-1)
    e = eps.unsqueeze(1)
    zn, fn, gn = z, fz, gz
    for _ in range(steps):
        p = p + 0.5 * e * gn
        zn = zn + e * p
        fn, gn = f.value_and_grad(zn)
        p = p + 0.5 * e * gn
    log_alpha = torch.nan_to_num(fn - 0.5 * p.square().sum(-1) - h0, nan=-math.inf).clamp(max=0)
    accept = torch.log(_rand(z.shape[0], gen)) < log_alpha
    keep = accept.unsqueeze(1)
    state = (torch.where(keep, zn, z), torch.where(accept, fn, fz), torch.where(keep, gn, gz))
    return state, log_alpha.exp()


class _DualAveraging:
    """Step-size adaptation per group (Hoffman & Gelman 2014, section 3.2)."""

    def __init__(self, eps: Tensor, target: float) -> None:
        self.mu, self.target = torch.log(10 * eps), target
        self.h, self.log_eps, self.log_bar, self.t = torch.zeros_like(eps), eps.log(), eps.log(), 0

    def update(self, acceptance: Tensor) -> None:
        self.t += 1
        t, eta = self.t, 1 / (self.t + 10)
        self.h = (1 - eta) * self.h + eta * (self.target - acceptance)
        self.log_eps = self.mu - math.sqrt(t) / 0.05 * self.h
        weight = t**-0.75
        self.log_bar = weight * self.log_eps + (1 - weight) * self.log_bar


def sample_mcmc(
    log_prob: LogDensity,
    init: Tensor,
    num_samples: int,
    *,
    sampler: str = "slice",
    warmup: int = 100,
    thin: int = 1,
    groups: Tensor | None = None,
    generator: torch.Generator | None = None,
    leapfrog_steps: int = 10,
    width: float = 3.0,
    max_steps: int = 10,
) -> MCMCResult:
    """Run every chain at once and keep ``num_samples`` draws per group.

    Arguments:
        log_prob: ``log_prob(points (K, D), chains (K,)) -> (K,)``, the log-density (up to a
            constant) of the target of each point's chain; -inf outside the support.
        init: (C, D) starting points, e.g. from `sir_init`.
        num_samples: draws to keep per group; each chain keeps ceil(num_samples / C_g).
        sampler: ``"slice"``, ``"hmc"`` or ``"mala"``.
        warmup: transitions (slice: sweeps over all coordinates) before keeping draws.
        thin: keep every ``thin``-th transition after warm-up.
        groups: (C,) target index of each chain, 0..G-1 (default: one target).
        generator: the source of all randomness.
        leapfrog_steps: leapfrog steps per HMC transition.
        width: slice width in whitened coordinates (the posterior's scale is ~1 there).
        max_steps: most stepping-out steps per slice (Neal's m).

    Returns:
        An `MCMCResult`; ``result.samples(num_samples, g)`` are the draws of group g.

    Example:
        >>> target = lambda u, rows: -0.5 * u.square().sum(-1)
        >>> init = torch.randn(20, 2, dtype=torch.float64)
        >>> result = sample_mcmc(target, init, 400, warmup=20)
        >>> result.samples(400).shape, bool(result.rhat.max() < 1.1)
        (torch.Size([400, 2]), True)
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if init.ndim != 2 or not torch.isfinite(init).all():
        raise ValueError(f"init must be a finite (C, D) tensor, got shape {tuple(init.shape)}")
    for name, value, low in (
        ("num_samples", num_samples, 1),
        ("warmup", warmup, 0),
        ("thin", thin, 1),
    ):
        whole(value, name, low)
    c = init.shape[0]
    groups = torch.zeros(c, dtype=torch.long) if groups is None else groups.long()
    counts = torch.bincount(groups) if groups.shape == (c,) and groups.min() >= 0 else None
    if counts is None or (counts == 0).any():
        raise ValueError(f"groups must be (C,) = ({c},) indices covering 0..G-1")
    num_groups, rows = len(counts), torch.arange(c)
    per_chain = -(-num_samples // int(counts.min()))

    f = _Counter(log_prob, _Whitening(init.double(), groups, num_groups))
    z = f.whitening.to_z(init.double())
    gradient = sampler != "slice"
    state = f.value_and_grad(z) if gradient else f(z, rows)
    if gradient:
        state = (z, *state)
        steps = 1 if sampler == "mala" else leapfrog_steps
        eps0 = torch.full((num_groups,), 0.5 if sampler == "hmc" else 1.0, dtype=torch.float64)
        adapt = _DualAveraging(eps0, _TARGET[sampler])
    acceptance = torch.zeros(num_groups, dtype=torch.float64)
    kept = []
    for it in range(warmup + per_chain * thin):
        if it > 0 and it in (warmup // 3, 2 * warmup // 3):  # re-whiten from the chains' spread
            u = f.whitening.to_u(state[0] if gradient else z, rows)
            f.whitening = _Whitening(u, groups, num_groups)
            z = f.whitening.to_z(u)
            if gradient:  # and tune the step size afresh in the new coordinates
                state = (z, *f.value_and_grad(z))
                adapt = _DualAveraging(adapt.log_eps.exp(), _TARGET[sampler])
            else:
                state = f(z, rows)
        if not gradient:
            _slice_sweep(f, z, state, width, max_steps, generator)
        else:
            log_eps = adapt.log_eps if it < warmup else adapt.log_bar
            eps = log_eps.exp()[groups] * (0.5 + _rand(c, generator))  # jitter: no periodic orbits
            state, alpha = _hmc_step(f, state, eps, steps, generator)
            per_group = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, groups, alpha)
            per_group = per_group / counts
            if it < warmup:
                adapt.update(per_group)
            else:
                acceptance += per_group / (per_chain * thin)
        if it >= warmup and (it - warmup + 1) % thin == 0:
            kept.append(f.whitening.to_u(state[0] if gradient else z, rows))
    chains = torch.stack(kept, 1)
    rhat, eff = (torch.full((num_groups, init.shape[1]), math.nan) for _ in range(2))
    if per_chain >= 4:
        rhat = torch.stack([split_rhat(chains[groups == g]) for g in range(num_groups)])
        eff = torch.stack([ess(chains[groups == g]) for g in range(num_groups)])
    if not gradient:
        acceptance = torch.ones(num_groups, dtype=torch.float64)
    return MCMCResult(chains, groups, rhat, eff, acceptance, f.calls)
