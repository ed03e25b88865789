"""The bounded and simplex tasks (beta_binomial, dirichlet_multinomial): each exact piece
checked by a route independent of its closed form.

Monte Carlo tolerances are 5 standard errors, each estimated from the draws themselves, at
fixed seeds (the autouse fixture seeds torch; the generators below are seeded explicitly), so
a statistical false alarm has probability below 1e-6 per check.
"""

import math

import pytest
import torch
from scipy import stats
from scipy.special import betaln, gammaln

from sbibench import get_task
from sbibench.reference.build import exact_moments
from sbibench.task import CardError, load_card

BOUNDED = ["beta_binomial", "dirichlet_multinomial"]


def _mc_close(samples: torch.Tensor, expected: torch.Tensor, se_factor: float = 5.0) -> bool:
    """Is the mean of (n, ...) samples within se_factor standard errors of ``expected``?"""
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return bool(((samples.mean(0) - expected).abs() <= se_factor * se + 1e-12).all())


# --- log-likelihoods against scipy ----------------------------------------------------------


def test_beta_binomial_log_likelihood_is_scipys_binomial():
    task = get_task("beta_binomial")
    model = task.model
    theta = torch.tensor([[0.0], [1e-9], [0.3], [0.5], [0.97], [1.0]], dtype=torch.float64)
    x = task.observation(1)
    expected = [
        stats.binom.logpmf(x.numpy(), model.num_trials, p).sum() for p in theta[:, 0].tolist()
    ]
    got = task.log_likelihood(theta, x)
    finite = torch.isfinite(torch.tensor(expected))
    assert torch.allclose(got[finite], torch.tensor(expected)[finite], rtol=1e-12, atol=1e-9)
    assert (got[~finite] == -math.inf).all()  # p = 0 or 1 with counts strictly inside 0..N
    # at p = 0 only all-zero data have probability 1
    zeros = torch.zeros(model.num_draws, dtype=torch.float64)
    assert task.log_likelihood(torch.zeros(1, 1, dtype=torch.float64), zeros).item() == 0.0


def test_dirichlet_multinomial_log_likelihood_is_scipys_multinomial():
    task = get_task("dirichlet_multinomial")
    model = task.model
    theta = task.sample_prior(20, torch.Generator().manual_seed(3))
    for k in (1, 2):
        x = task.observation(k)
        counts = x.reshape(model.num_draws, model.num_categories).numpy()
        expected = torch.tensor(
            [stats.multinomial.logpmf(counts, model.num_trials, t).sum() for t in theta.numpy()]
        )
        assert torch.allclose(task.log_likelihood(theta, x), expected, rtol=1e-12, atol=1e-9)
    # row by row with (N, M) data
    x = task.simulate(theta, torch.Generator().manual_seed(4))
    rows = torch.cat([task.log_likelihood(theta[i : i + 1], x[i]) for i in range(20)])
    assert torch.allclose(task.log_likelihood(theta, x), rows, rtol=0, atol=1e-12)


# --- simulators against Binomial and Multinomial moments ---------------------------------


def test_beta_binomial_simulator_has_binomial_moments():
    """20,000 data sets of 10 counts at p = 0.3: mean N p = 6, variance N p (1 - p) = 4.2."""
    task = get_task("beta_binomial")
    n, trials = 20_000, task.model.num_trials
    x = task.simulate(
        torch.full((n, 1), 0.3, dtype=torch.float64), torch.Generator().manual_seed(0)
    )
    assert x.shape == (n, 10) and x.dtype == torch.float64
    assert torch.equal(x, x.round()) and (x >= 0).all() and (x <= trials).all()
    flat = x.reshape(-1, 1)
    assert _mc_close(flat, torch.tensor([trials * 0.3], dtype=torch.float64))
    assert _mc_close((flat - trials * 0.3) ** 2, torch.tensor([trials * 0.3 * 0.7]))
    # the 10 counts of a data set are independent: correlation of neighbours ~ 0 (se 1/sqrt(n))
    z = (x - x.mean(0)) / x.std(0)
    assert ((z[:, :-1] * z[:, 1:]).mean(0).abs() < 5 / math.sqrt(n)).all()
    # a pure function of the generator
    again = task.simulate(
        torch.full((n, 1), 0.3, dtype=torch.float64), torch.Generator().manual_seed(0)
    )
    assert torch.equal(x, again)


def test_dirichlet_multinomial_simulator_has_multinomial_moments():
    """20,000 data sets of 5 count vectors at theta = (0.05, 0.15, 0.3, 0.5): each vector sums
    to N = 20, has mean N theta and covariance N (diag theta - theta theta^T) (negative off the
    diagonal), and vectors of one data set are independent."""
    task = get_task("dirichlet_multinomial")
    model = task.model
    n, trials, k = 20_000, model.num_trials, model.num_categories
    theta = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=torch.float64)
    x = task.simulate(theta.expand(n, k), torch.Generator().manual_seed(0))
    assert x.shape == (n, model.num_draws * k) and x.dtype == torch.float64
    assert torch.equal(x, x.round()) and (x >= 0).all()
    vectors = x.reshape(n, model.num_draws, k)
    assert (vectors.sum(-1) == trials).all()
    flat = vectors.reshape(-1, k)
    assert _mc_close(flat, trials * theta)
    centred = flat - trials * theta
    products = (centred.unsqueeze(-1) * centred.unsqueeze(-2)).reshape(len(flat), -1)
    covariance = trials * (torch.diag(theta) - torch.outer(theta, theta))
    assert _mc_close(products, covariance.reshape(-1))
    # independence of the first and second vectors of a data set
    first, second = vectors[:, 0] - trials * theta, vectors[:, 1] - trials * theta
    cross = (first.unsqueeze(-1) * second.unsqueeze(-2)).reshape(n, -1)
    assert _mc_close(cross, torch.zeros(k * k, dtype=torch.float64))
    # a zero probability gives a zero count; a one gives all N
    edge = task.simulate(torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64))
    assert torch.equal(edge.reshape(-1, k), torch.tensor([[0.0, 0.0, 20.0, 0.0]]).expand(5, k))


# --- posteriors -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_beta_posterior_matches_quadrature(k):
    """Prior x likelihood normalised on a 20,001-point grid over (0, 1): the density, moments and
    normaliser of the closed form, and the normaliser equals the Beta-Binomial evidence
    prod_i C(N, x_i) B(a + S, b + m N - S) / B(a, b)."""
    task = get_task("beta_binomial")
    model = task.model
    x = task.observation(k)
    grid = torch.linspace(0, 1, 20_001, dtype=torch.float64)[1:-1]
    log_joint = task.log_joint(grid.unsqueeze(1), x)
    peak = log_joint.max()
    log_z = peak + torch.trapezoid((log_joint - peak).exp(), grid).log()
    density = (log_joint - log_z).exp()
    posterior = task.posterior(x)
    exact = posterior.log_prob(grid.unsqueeze(1)).exp()
    relevant = exact > 1e-3 * exact.max()
    assert torch.allclose(density[relevant], exact[relevant], rtol=1e-6)
    mean, cov = exact_moments(posterior)
    grid_mean = torch.trapezoid(density * grid, grid)
    grid_var = torch.trapezoid(density * (grid - grid_mean) ** 2, grid)
    assert grid_mean.item() == pytest.approx(mean.item(), rel=1e-8)
    assert grid_var.item() == pytest.approx(cov.item(), rel=1e-6)
    s, total = x.sum().item(), model.num_draws * model.num_trials
    n = model.num_trials
    log_choose = sum(gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1) for c in x.tolist())
    evidence = log_choose + betaln(model.alpha + s, model.beta + total - s)
    evidence -= betaln(model.alpha, model.beta)
    assert log_z.item() == pytest.approx(evidence, abs=1e-8)
    theta = posterior.sample((100,))
    gap = task.log_joint(theta, x) - posterior.log_prob(theta)
    assert torch.allclose(gap, torch.full((100,), evidence, dtype=torch.float64), atol=1e-9)


def _dirichlet_evidence(model, x: torch.Tensor) -> float:
    """log p(x): prod_i multinomial coefficient x B(alpha + totals) / B(alpha), B the
    multivariate Beta function."""
    counts = x.reshape(model.num_draws, model.num_categories).numpy()
    alpha = torch.tensor(model.concentration).numpy()
    totals = counts.sum(0)

    def log_beta(a):
        return gammaln(a).sum() - gammaln(a.sum())

    coefficients = (gammaln(model.num_trials + 1) - gammaln(counts + 1).sum(-1)).sum()
    return float(coefficients + log_beta(alpha + totals) - log_beta(alpha))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dirichlet_posterior_normaliser_by_quadrature_on_the_simplex(k):
    """Prior x likelihood on a 3-D grid over (theta_1, theta_2, theta_3) (theta_4 = 1 - their
    sum), posterior mean +- 9 sd per axis in 121 points: its integral is the Dirichlet-Multinomial
    evidence, which is also the constant log p(x | theta) + log p(theta) - log q(theta | x).
    That the densities are with respect to the first K - 1 coordinates is what this checks."""
    task = get_task("dirichlet_multinomial")
    x = task.observation(k)
    posterior = task.posterior(x)
    mean, cov = exact_moments(posterior)
    sd = cov.diagonal().sqrt()
    axes = [
        torch.linspace(
            max(mean[i] - 9 * sd[i], 1e-9), mean[i] + 9 * sd[i], 121, dtype=torch.float64
        )
        for i in range(3)
    ]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    last = 1 - mesh.sum(-1, keepdim=True)
    inside = (last > 0).squeeze(-1)
    theta = torch.cat([mesh, last], -1)
    log_joint = torch.full((len(mesh),), -math.inf, dtype=torch.float64)
    log_joint[inside] = task.log_joint(theta[inside], x)
    peak = log_joint.max()
    mass = (log_joint - peak).exp().reshape(121, 121, 121)
    for axis in reversed(axes):
        mass = torch.trapezoid(mass, axis, dim=-1)
    log_z = (peak + mass.log()).item()
    evidence = _dirichlet_evidence(task.model, x)
    assert log_z == pytest.approx(evidence, abs=1e-6)
    draws = posterior.sample((200,))
    gap = task.log_joint(draws, x) - posterior.log_prob(draws)
    assert torch.allclose(gap, torch.full((200,), evidence, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_dirichlet_posterior_moments_by_importance_sampling_from_the_prior(k):
    """Self-normalised importance sampling, 400,000 prior draws weighted by the exact
    likelihood: mean and full covariance (off-diagonals negative) agree with the closed form
    (`exact_moments`) within 5 delta-method standard errors; each component's marginal is
    Beta(alpha_k, alpha_0 - alpha_k), checked on its CDF at the quartiles."""
    task = get_task("dirichlet_multinomial")
    x = task.observation(k)
    theta = task.sample_prior(400_000, torch.Generator().manual_seed(10 + k))
    w = torch.softmax(task.log_likelihood(theta, x), 0)
    ess = 1 / (w**2).sum()
    assert ess > 2000
    mean, cov = exact_moments(task.posterior(x))

    def check(values: torch.Tensor, expected: torch.Tensor) -> None:
        estimate = w @ values
        se = ((w.unsqueeze(-1) ** 2) * (values - estimate) ** 2).sum(0).sqrt()
        assert ((estimate - expected).abs() <= 5 * se).all(), (estimate, expected, se)

    check(theta, mean)
    centred = theta - mean
    check((centred.unsqueeze(-1) * centred.unsqueeze(-2)).reshape(len(theta), -1), cov.reshape(-1))
    assert (cov - torch.diag(cov.diagonal()) <= 0).all()
    alpha = task.posterior(x).concentration
    for j in range(4):
        marginal = stats.beta(alpha[j].item(), (alpha.sum() - alpha[j]).item())
        quartiles = torch.tensor(marginal.ppf([0.25, 0.5, 0.75]), dtype=torch.float64)
        below = (theta[:, j : j + 1] <= quartiles).double()
        check(below, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))


@pytest.mark.parametrize("name", BOUNDED)
def test_reference_files_hold_exact_draws_inside_the_support(name):
    task = get_task(name)
    for k in range(1, task.num_observations + 1):
        samples = task.reference_samples(k)
        assert task.prior.support.check(samples).all()
        if name == "dirichlet_multinomial":
            assert (samples >= 0).all() and ((samples.sum(-1) - 1).abs() < 1e-12).all()
        mean, cov = task.reference_moments(k)
        recomputed = exact_moments(task.posterior(task.observation(k)))
        assert torch.allclose(mean, recomputed[0], rtol=1e-12)
        assert torch.allclose(cov, recomputed[1], rtol=1e-12, atol=1e-15)
        sample_cov = torch.cov(samples.T)
        se = (cov.diagonal().unsqueeze(0) * cov.diagonal().unsqueeze(1)).sqrt() * (
            2 / 10_000
        ) ** 0.5
        assert ((sample_cov - cov).abs() <= 5 * se).all()


@pytest.mark.parametrize("name", BOUNDED)
def test_summaries_are_sufficient(name):
    """Two data sets with equal summaries have posteriors equal to rounding."""
    task = get_task(name)
    x = task.observation(1)
    m = task.model.num_draws
    if name == "beta_binomial":
        permuted = x.flip(0)
    else:  # reorder the count vectors within the data set
        permuted = x.reshape(m, -1).flip(0).reshape(-1)
    assert torch.equal(task.summary(x.unsqueeze(0)), task.summary(permuted.unsqueeze(0)))
    a, b = task.posterior(x), task.posterior(permuted)
    assert torch.allclose(a.mean, b.mean, rtol=1e-14)
    assert task.summary(x.unsqueeze(0)).shape == (1, 1 if name == "beta_binomial" else 3)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ("concentration = [1.0]", r"field prior.concentration must be a list of at least 2"),
        ("concentration = [1.0, -2.0]", r"field prior.concentration must be > 0, got -2.0"),
        ("concentration = 1.0", r"field prior.concentration must be a list"),
    ],
)
def test_dirichlet_card_fields_are_checked(tmp_path, replace, message):
    card = get_task("dirichlet_multinomial").card_path.read_text()
    path = tmp_path / "dirichlet_multinomial.toml"
    path.write_text(card.replace("concentration = [1.0, 2.0, 3.0, 4.0]", replace))
    with pytest.raises(CardError, match=message):
        load_card(path)


def test_beta_card_fields_are_checked(tmp_path):
    card = get_task("beta_binomial").card_path.read_text()
    path = tmp_path / "beta_binomial.toml"
    path.write_text(card.replace("num_trials = 20", "num_trials = 0"))
    with pytest.raises(CardError, match=r"field simulator.num_trials must be >= 1, got 0"):
        load_card(path)
