"""The models of sbibm's uniform-prior tasks, each checked by a route independent of the
closed form: grid quadrature, rejection and importance sampling with the exact likelihood,
and the simulator itself."""

import math

import pytest
import torch
from scipy import integrate, stats

from sbibench import get_task
from sbibench.models.uniform_mixture import TruncatedNormal
from sbibench.reference.build import exact_moments

D = torch.float64


def _trapezoid_2d(values, first, second):
    return torch.trapezoid(torch.trapezoid(values, second, dim=-1), first)


def _grid_moments(task, x, first, second):
    """log Z, mean and covariance of prior x likelihood on the product grid first x second,
    and the normalised density there."""
    mesh = torch.stack(torch.meshgrid(first, second, indexing="ij"), -1)
    # The prior's density inside the box, also on its upper edges (where the half-open
    # Uniform gives zero): the grid's end points are the box's edges.
    log_prior = task.prior.log_prob(torch.zeros(2, dtype=D))
    log_joint = task.log_likelihood(mesh.reshape(-1, 2), x).reshape(len(first), len(second))
    log_joint = log_joint + log_prior
    peak = log_joint.max()
    weights = (log_joint - peak).exp()
    mass = _trapezoid_2d(weights, first, second)
    density = weights / mass
    mean = torch.stack([_trapezoid_2d(density * mesh[..., i], first, second) for i in range(2)])
    centred = mesh - mean
    cov = torch.stack(
        [
            _trapezoid_2d(density * centred[..., i] * centred[..., j], first, second)
            for i in range(2)
            for j in range(2)
        ]
    ).reshape(2, 2)
    return peak + mass.log(), mean, cov, mesh.reshape(-1, 2), density.reshape(-1)


def _axis(x, bound, wide, narrow):
    """A grid on [-bound, bound] with ``wide`` points, plus ``narrow`` points within 1 of x
    (801: 0.0025 apart, 40 points per sd of the narrow component, whose sd is 0.1)."""
    coarse = torch.linspace(-bound, bound, wide, dtype=D)
    fine = torch.linspace(x - 1, x + 1, narrow, dtype=D).clamp(-bound, bound)
    return torch.unique(torch.cat([coarse, fine]))


@pytest.mark.parametrize("k", [1, 7])
def test_gaussian_mixture_posterior_matches_grid_quadrature(k):
    task = get_task("gaussian_mixture")
    x = task.observation(k)
    first, second = (_axis(x[i].item(), 10.0, 1601, 801) for i in range(2))
    log_z, mean, cov, mesh, density = _grid_moments(task, x, first, second)
    posterior = task.posterior(x)
    exact_mean, exact_cov = exact_moments(posterior)
    # The trapezoid rule converges as h^2: on observations 1 and 7 the covariance misses by
    # 1.0e-5 and 1.8e-5 with 801 coarse points, 2.5e-6 and 4.3e-6 with 1601 (the means by
    # 1e-6 and 3e-7 or less): quartering. This grid is the second; tolerances are 2-4 times
    # its error.
    assert torch.allclose(mean, exact_mean, atol=2e-6)
    assert torch.allclose(cov, exact_cov, atol=1e-5)
    exact = posterior.log_prob(mesh).exp()
    relevant = exact > 1e-3 * exact.max()
    assert torch.allclose(density[relevant], exact[relevant], rtol=1e-5)
    theta = posterior.sample((100,))
    gap = task.log_joint(theta, x) - posterior.log_prob(theta)
    assert torch.allclose(gap, log_z.expand(100), atol=1e-6)


@pytest.mark.parametrize(
    ("low", "high", "loc"),
    [(-1.0, 1.0, 0.3), (-1.0, 1.0, 1.9), (-1.0, 1.0, -2.2), (-10.0, 10.0, 9.95)],
)
def test_truncated_normal_moments_and_sampler(low, high, loc):
    """Mean and variance against 1-D adaptive quadrature of the normalised density, and 100,000
    inverse-CDF draws within 5 standard errors of them; bounds up to 10 sd from loc."""
    scale = 0.1**0.5
    dist = TruncatedNormal(*(torch.tensor(v, dtype=D) for v in (loc, scale, low, high)))

    def moment(power):
        def f(t):
            return t**power * math.exp(dist.log_prob(torch.tensor(t, dtype=D)).item())

        return integrate.quad(f, low, high, points=[min(max(loc, low), high)], epsabs=1e-13)[0]

    assert moment(0) == pytest.approx(1.0, abs=1e-9)
    assert dist.mean.item() == pytest.approx(moment(1), abs=1e-9)
    assert dist.variance.item() == pytest.approx(moment(2) - moment(1) ** 2, abs=1e-9)
    draws = dist.sample((100_000,))
    assert ((draws >= low) & (draws < high)).all()
    standard_error = dist.variance.sqrt() / math.sqrt(len(draws))
    assert abs(draws.mean() - dist.mean) < 5 * standard_error


@pytest.mark.parametrize("k", [1, 3])
def test_gaussian_linear_uniform_posterior_by_rejection(k):
    """sbibm's own route: draws from N(x, 0.1 I) kept when inside the box are exact posterior
    draws. Their mean is within 5 standard errors (sd / sqrt(n)) of the exact one, and the
    fraction kept estimates the box mass of N(x, 0.1 I), which is 2^10 times the evidence,
    within 5 binomial standard errors."""
    task = get_task("gaussian_linear_uniform")
    x = task.observation(k)
    n = 400_000
    proposal = x + 0.1**0.5 * torch.randn(n, 10, dtype=D)
    inside = (proposal.abs() < 1).all(-1)
    kept = proposal[inside]
    posterior = task.posterior(x)
    mean, cov = exact_moments(posterior)
    sd = cov.diagonal().sqrt()
    assert ((kept.mean(0) - mean).abs() < 5 * sd / math.sqrt(len(kept))).all()
    fraction = inside.double().mean()
    theta = posterior.sample((50,))
    log_evidence = task.log_joint(theta, x) - posterior.log_prob(theta)
    assert torch.allclose(log_evidence, log_evidence[0].expand(50), atol=1e-10)
    box_mass = (log_evidence[0] + 10 * math.log(2)).exp()
    assert abs(fraction - box_mass) < 5 * (box_mass * (1 - box_mass) / n).sqrt()
    # The posterior covariance is diagonal: the dimensions are independent.
    assert torch.equal(cov, torch.diag_embed(cov.diagonal()))


# two_moons: sbibm's observations 1 and 4, and data with x_1 > c, where p_1 < x_1 happens
# (a third of the proposals have no theta) and the crescent is short.
TWO_MOONS_DATA = {"obs1": 1, "obs4": 4, "x1_above_offset": (0.3, 0.05)}


def _two_moons_data(case):
    task = get_task("two_moons")
    value = TWO_MOONS_DATA[case]
    return task, task.observation(value) if isinstance(value, int) else torch.tensor(value, dtype=D)


@pytest.mark.parametrize("case", list(TWO_MOONS_DATA))
def test_two_moons_posterior_matches_grid_quadrature(case):
    """Grids over the prior box, 0.002 and 0.001 apart (5 and 10 points per sd of the ridge).
    The likelihood jumps to zero along the half-circle's ends, lines that cross the grid
    diagonally, so the trapezoid rule converges slowly (errors about 1.5e-3 on log Z at the
    finer grid). The test asks that the grid converges to the exact values: the finer grid
    is closer, and within 1.5 times the two grids' difference of them."""
    task, x = _two_moons_data(case)
    posterior = task.posterior(x)
    exact_mean, exact_cov = exact_moments(posterior)
    theta = posterior.sample((200,))
    gap = task.log_joint(theta, x) - posterior.log_prob(theta)
    assert torch.allclose(gap, gap[0].expand(200), atol=1e-10)
    exact = torch.cat([gap[:1], exact_mean, exact_cov.flatten()])
    grids = []
    for n in (1001, 2001):
        axis = torch.linspace(-1, 1, n, dtype=D)
        log_z, mean, cov, _, _ = _grid_moments(task, x, axis, axis)
        grids.append(torch.cat([log_z.reshape(1), mean, cov.flatten()]))
    coarse, fine = grids
    assert ((fine - exact).abs() <= (coarse - exact).abs() + 1e-12).all()
    assert ((fine - exact).abs() <= 1.5 * (fine - coarse).abs() + 1e-12).all()


@pytest.mark.parametrize("case", list(TWO_MOONS_DATA))
def test_two_moons_inversion_sampler_against_importance_sampling(case):
    """Three routes to the posterior mean and covariance: the quadrature (exact), 100,000
    draws of the inversion sampler, and self-normalised importance sampling with the exact
    likelihood and 2 million uniform proposals on the box. Means agree within 5 standard
    errors (sd / sqrt(n), with the effective sample size for importance sampling), variances
    within 5 relative standard errors (sqrt((kurtosis - 1) / n), kurtosis below 3 here)."""
    task, x = _two_moons_data(case)
    posterior = task.posterior(x)
    mean, cov = exact_moments(posterior)
    sd = cov.diagonal().sqrt()
    draws = posterior.sample((100_000,))
    assert task.prior.support.check(draws).all()
    assert ((draws.mean(0) - mean).abs() < 5 * sd / math.sqrt(len(draws))).all()
    relative = (draws.var(0) - cov.diagonal()).abs() / cov.diagonal()
    assert (relative < 5 * math.sqrt(2 / len(draws))).all()
    proposals = torch.rand(2_000_000, 2, dtype=D) * 2 - 1
    weights = torch.softmax(task.log_likelihood(proposals, x), 0)
    ess = 1 / (weights**2).sum()
    assert ess > 5_000
    is_mean = weights @ proposals
    assert ((is_mean - mean).abs() < 5 * sd / ess.sqrt()).all()
    is_variance = weights @ (proposals - mean) ** 2
    relative = (is_variance - cov.diagonal()).abs() / cov.diagonal()
    assert (relative < 5 * (2 / ess).sqrt()).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_two_moons_inversion_has_unit_jacobian(sign):
    """On each branch the map p -> theta is a reflection and a rotation: |det| = 1 exactly,
    so inverting simulator draws puts density p(x | theta) / 2 on theta."""
    task = get_task("two_moons")
    x = task.observation(2)
    model = task.model

    def theta_of_p(p):
        # (a, r) from p, then the inversion: only p enters, through (a, r)
        q = p - torch.tensor([model.offset, 0.0], dtype=D)
        return model.invert(x, torch.atan2(q[1], q[0]), q.norm(), torch.tensor(sign, dtype=D))[0]

    for p in ([0.33, 0.04], [0.27, -0.09], [0.3, 0.0]):
        jacobian = torch.autograd.functional.jacobian(theta_of_p, torch.tensor(p, dtype=D))
        assert torch.linalg.det(jacobian).abs().item() == pytest.approx(1.0, abs=1e-12)


def test_two_moons_likelihood_is_the_simulators_density():
    """At a fixed theta the density of x integrates to 1 over the plane (the 1 / (pi |q|)
    Jacobian is needed for that) and its mean is the mean of 200,000 simulations within 5
    standard errors."""
    task = get_task("two_moons")
    theta = torch.tensor([[0.2, -0.5]], dtype=D)
    x = task.simulate(theta.expand(200_000, -1), torch.Generator().manual_seed(0))
    # The density jumps to zero at q_1 = 0, the ends of the half-circle: the first axis
    # starts there, x_1 = c - |u|, so that no grid cell straddles the jump.
    lows, highs = x.min(0).values - 0.05, x.max(0).values + 0.05
    start = task.model.offset - (theta.sum() / math.sqrt(2)).abs().item()
    first = torch.linspace(start, highs[0].item(), 1601, dtype=D)
    second = torch.linspace(lows[1].item(), highs[1].item(), 3201, dtype=D)
    mesh = torch.stack(torch.meshgrid(first, second, indexing="ij"), -1).reshape(-1, 2)
    density = task.log_likelihood(theta.expand(len(mesh), -1), mesh).exp()
    density = density.reshape(len(first), len(second))
    # The ridge (sd 0.01) has 5 grid points per sd along the first axis here: trapezoid error
    # well below 1e-4; the density vanishes at the grid's edges.
    assert _trapezoid_2d(density, first, second).item() == pytest.approx(1.0, abs=1e-4)
    mesh = mesh.reshape(len(first), len(second), 2)
    for i in range(2):
        grid_mean = _trapezoid_2d(density * mesh[..., i], first, second)
        assert abs(x[:, i].mean() - grid_mean) < 5 * x[:, i].std() / math.sqrt(len(x))


def test_gaussian_mixture_simulator_matches_sbibm_scales():
    """sbibm 1.1.0: scales (1.0, 0.1) with equal weights, one component for both dimensions.
    The squared distance |x - theta|^2 is then 0.5 Gamma(1, 2) + 0.5 Gamma(1, 0.02), i.e. an
    equal mixture of exponentials with means 2 and 0.02: a KS test on 20,000 draws."""
    task = get_task("gaussian_mixture")
    theta = torch.zeros(20_000, 2, dtype=D)
    squared = (task.simulate(theta, torch.Generator().manual_seed(0)) ** 2).sum(-1).numpy()

    def cdf(s):
        return 0.5 * stats.expon(scale=2.0).cdf(s) + 0.5 * stats.expon(scale=0.02).cdf(s)

    assert stats.kstest(squared, cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", ["gaussian_linear_uniform", "gaussian_mixture", "two_moons"])
def test_log_prob_outside_the_prior_box_is_minus_infinity(name):
    """Methods' samples may leave the box: the exact density there is 0, not an error."""
    task = get_task(name)
    theta = torch.full((3, task.dim_parameters), 20.0, dtype=D)
    theta[1, 0] = 0.0
    assert torch.equal(
        task.posterior(task.observation(1)).log_prob(theta), torch.full((3,), -math.inf, dtype=D)
    )


def test_two_moons_simulator_is_sbibms_map():
    """sbibm 1.1.0's ``TwoMoons._map_fun``, written out: rotate theta by -pi/4 with
    c = cos(-pi/4), s = sin(-pi/4), then x = p + (-|c t1 - s t2|, s t1 + c t2). Given the same
    angle and radius draws (ours: the angle, then the radius, from one generator), our simulator
    gives the same data."""
    task = get_task("two_moons")
    theta = task.sample_prior(1000, torch.Generator().manual_seed(1))
    x = task.simulate(theta, torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(2)
    a = (torch.rand(1000, generator=generator, dtype=D) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(1000, generator=generator, dtype=D)
    p = torch.stack([torch.cos(a) * r + 0.25, torch.sin(a) * r], -1)
    c, s = math.cos(-math.pi / 4), math.sin(-math.pi / 4)
    z0 = c * theta[:, 0] - s * theta[:, 1]
    z1 = s * theta[:, 0] + c * theta[:, 1]
    assert torch.allclose(x, p + torch.stack([-z0.abs(), z1], -1), atol=1e-14)


def test_gaussian_linear_uniform_noise_has_variance_0_1():
    """sbibm 1.1.0's simulator has precision inverse(0.1 I): covariance 0.1 I. Then
    |x - theta|^2 / 0.1 is chi-square with 10 degrees of freedom: a KS test on 20,000 draws."""
    task = get_task("gaussian_linear_uniform")
    theta = task.sample_prior(20_000, torch.Generator().manual_seed(1))
    x = task.simulate(theta, torch.Generator().manual_seed(2))
    statistic = ((x - theta) ** 2).sum(-1).numpy() / 0.1
    assert stats.kstest(statistic, stats.chi2(10).cdf).pvalue > 1e-3
