"""Every exact posterior, checked by routes independent of its closed form."""

import math

import pytest
import torch
from scipy import stats

from sbibench import get_task, list_tasks
from sbibench.reference.build import exact_moments

LOW_DIMENSIONAL = ["poisson_gamma", "normal_mean", "normal_mean_variance"]
GAUSSIAN = ["linear_gaussian", "linear_gaussian_vae"]
# The dimension ladder's other rungs (linear_gaussian's family at D = 2..100): the evidence and
# the Laplace routes at every D; importance sampling, whose weights degenerate as D grows,
# where D is small.
LADDER = [f"linear_gaussian_d{d}" for d in (2, 5, 20, 50, 100)]
# Checked in test_sbibm_models.py: grids, rejection and importance sampling.
UNIFORM_PRIOR = ["gaussian_linear_uniform", "gaussian_mixture", "two_moons"]
# Checked in test_bounded_models.py: quadrature on (0, 1) and on the simplex, importance sampling.
BOUNDED = ["beta_binomial", "dirichlet_multinomial"]
# Variants of normal_mean's model, checked here: the misspecified one's references against it
# (test_misspecified.py), the failing one's posterior is the task's it varies (test_failures.py).
VARIANTS = ["normal_mean_failing", "normal_mean_misspecified"]
# i.i.d. sets of varying size, checked in test_iid_sets.py: a grid per set size n.
SETS = ["normal_mean_sets"]


def test_every_task_is_checked_by_an_independent_route():
    assert (
        sorted(LOW_DIMENSIONAL + GAUSSIAN + LADDER + UNIFORM_PRIOR + BOUNDED + VARIANTS + SETS)
        == list_tasks()
    )


def _grid(task_name, x):
    """A grid wide enough to hold all the posterior mass, chosen from the data alone."""
    if task_name == "poisson_gamma":
        return [torch.linspace(1e-6, x.max().item() * 3 + 10, 20001, dtype=torch.float64)]
    spread = x.std().item()
    if task_name == "normal_mean":
        return [
            torch.linspace(x.mean().item() - 5, x.mean().item() + 5, 20001, dtype=torch.float64)
        ]
    mu = torch.linspace(x.mean().item() - 6 * spread, x.mean().item() + 6 * spread, 801)
    variance = torch.linspace(1e-4, 50 * spread**2 + 5, 4001)
    return [mu.double(), variance.double()]


def _quadrature(task, x):
    """Normalise prior x likelihood on a grid: log Z, density on the grid, mean and variance."""
    axes = _grid(task.name, x)
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))
    log_joint = task.log_joint(mesh, x).reshape([len(a) for a in axes])
    peak = log_joint.max()
    unnormalised = (log_joint - peak).exp()
    mass = unnormalised
    for axis in reversed(axes):
        mass = torch.trapezoid(mass, axis, dim=-1)
    log_z = peak + mass.log()
    density = (log_joint - log_z).exp()
    means, variances = [], []
    for i in range(len(axes)):
        weights = density
        for j in reversed(range(len(axes))):
            if j != i:
                weights = torch.trapezoid(weights, axes[j], dim=j)
        mean = torch.trapezoid(weights * axes[i], axes[i])
        means.append(mean)
        variances.append(torch.trapezoid(weights * (axes[i] - mean) ** 2, axes[i]))
    return log_z, mesh, density.reshape(-1), torch.stack(means), torch.stack(variances)


@pytest.mark.parametrize("name", LOW_DIMENSIONAL)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_low_dimensional_posterior_matches_quadrature(name, k):
    task = get_task(name)
    x = task.observation(k)
    log_z, mesh, density, mean, variance = _quadrature(task, x)
    posterior = task.posterior(x)
    # Density: where the posterior has mass, the closed form equals the normalised grid.
    exact = posterior.log_prob(mesh).exp()
    relevant = exact > 1e-3 * exact.max()
    assert torch.allclose(density[relevant], exact[relevant], rtol=1e-4)
    # Moments: trapezoid errors on these grids are far below 1e-5 relative.
    exact_mean, exact_cov = exact_moments(posterior)
    assert torch.allclose(mean, exact_mean, rtol=1e-5, atol=1e-8)
    assert torch.allclose(variance, exact_cov.diagonal(), rtol=1e-4)
    # The normaliser: log p(theta | x) = log p(x | theta) + log p(theta) - log Z everywhere.
    theta = posterior.sample((100,))
    gap = task.log_joint(theta, x) - posterior.log_prob(theta)
    assert torch.allclose(gap, log_z.expand(100), atol=1e-6)


def _gaussian_marginal_log_likelihood(model, x):
    """log N(x; A m0 + b, A S0 A^T + sigma^2 I): the evidence, by another formula."""
    mean = model.weights @ model.prior_mean + model.bias
    cov = model.weights @ model.prior_cov @ model.weights.T
    cov = cov + model.noise_scale**2 * torch.eye(len(x), dtype=torch.float64)
    return torch.distributions.MultivariateNormal(mean, cov).log_prob(x)


@pytest.mark.parametrize("name", GAUSSIAN + LADDER + ["normal_mean"])
def test_gaussian_posterior_normaliser_is_the_evidence(name):
    task = get_task(name)
    x = task.observation(1)
    posterior = task.posterior(x)
    theta = posterior.sample((200,))
    gap = task.log_joint(theta, x) - posterior.log_prob(theta)
    log_evidence = _gaussian_marginal_log_likelihood(task.model, x)
    assert torch.allclose(gap, log_evidence.expand(200), atol=1e-9)


def _laplace(task, x):
    """Mode of log p(x|theta) + log p(theta) by L-BFGS and the Hessian there by autograd."""
    theta = torch.zeros(task.dim_parameters, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [theta], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure():
        optimiser.zero_grad()
        loss = -task.log_joint(theta.unsqueeze(0), x).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    mode = theta.detach()
    hessian = torch.autograd.functional.hessian(
        lambda t: -task.log_joint(t.unsqueeze(0), x).sum(), mode
    )
    return mode, hessian


@pytest.mark.parametrize("name", GAUSSIAN + LADDER)
def test_gaussian_posterior_is_the_laplace_approximation(name):
    """For a Gaussian posterior the numerically found mode is the mean and the inverse
    Hessian there is the covariance, exactly."""
    task = get_task(name)
    x = task.observation(2)
    mode, hessian = _laplace(task, x)
    mean, cov = exact_moments(task.posterior(x))
    assert torch.allclose(mode, mean, atol=1e-7)
    assert torch.allclose(torch.linalg.inv(hessian), cov, atol=1e-10)


@pytest.mark.parametrize("name", GAUSSIAN + LADDER[:2])
def test_gaussian_posterior_moments_by_importance_sampling(name):
    """Self-normalised importance sampling with a heavy-tailed proposal (multivariate t, 5
    degrees of freedom, 1.5x the Laplace scale) weighted by the exact likelihood and prior."""
    task = get_task(name)
    x = task.observation(3)
    mode, hessian = _laplace(task, x)
    scale_tril = 1.5 * torch.linalg.cholesky(torch.linalg.inv(hessian))
    n, d = 200_000, task.dim_parameters
    # A multivariate t: Gaussian draws divided by sqrt(chi2_5 / 5); its log-density up to a
    # constant (self-normalisation removes constants) is -(5 + d) / 2 log(1 + r^2 / 5).
    mixing = torch.distributions.Chi2(5.0).sample((n, 1)).div(5).sqrt().double()
    standard = torch.randn(n, d, dtype=torch.float64) / mixing
    theta = mode + standard @ scale_tril.T
    log_q = -(5 + d) / 2 * torch.log1p(standard.pow(2).sum(-1) / 5)
    log_w = task.log_joint(theta, x) - log_q
    w = torch.softmax(log_w, 0)
    ess = 1 / (w**2).sum()
    mean_exact, cov_exact = exact_moments(task.posterior(x))
    assert ess > 20_000
    # The self-normalised IS mean has standard error about sd / sqrt(ESS); allow 5 of them.
    standard_error = cov_exact.diagonal().sqrt() / ess.sqrt()
    assert ((w @ theta - mean_exact).abs() < 5 * standard_error).all()
    # A variance estimate has relative standard error about sqrt(2 / ESS); allow 5 of them.
    centred = theta - mean_exact
    variance = w @ centred**2
    relative = (variance - cov_exact.diagonal()).abs() / cov_exact.diagonal()
    assert (relative < 5 * math.sqrt(2 / ess.item())).all()


def _sbc_chi_square(task, shrink, seed, datasets=500, draws=99, bins=10):
    """p-values per dimension of a chi-square test on SBC ranks of exact posterior draws
    (Talts et al. 2018), with the draws' spread about the posterior mean scaled by ``shrink``."""
    generator = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(datasets, generator)
    x = task.simulate(theta, generator)
    posterior = task.posterior(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        draws_ = posterior.sample((draws,))  # (L, N, D)
    mean = posterior.mean
    draws_ = mean + shrink * (draws_ - mean)
    ranks = (draws_ < theta).sum(0)  # (N, D) in 0..L
    counts = torch.stack([torch.bincount(r * bins // (draws + 1), minlength=bins) for r in ranks.T])
    return [stats.chisquare(c.numpy()).pvalue for c in counts]


@pytest.mark.parametrize("name", LOW_DIMENSIONAL + GAUSSIAN + UNIFORM_PRIOR)
def test_exact_posterior_passes_sbc_and_a_halved_spread_fails(name):
    task = get_task(name)
    # Exact draws give uniform ranks: at a fixed seed each p-value is one draw from U(0, 1);
    # the threshold 1e-3 would fail by chance with probability D * 1e-3 for this seed.
    assert min(_sbc_chi_square(task, 1.0, seed=11)) > 1e-3
    # Halving the spread pushes ranks to the ends: with 500 datasets the chi-square statistic
    # is in the hundreds, p far below 1e-6, in every dimension.
    assert max(_sbc_chi_square(task, 0.5, seed=11)) < 1e-6
