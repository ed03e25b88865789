"""Bijection tests for every flow of the registry: Jacobians, inverses, normalisation."""

import math

import pytest
import torch

from sbibench.autodiff import log_abs_det_jacobian
from sbibench.nn.transforms import Spline

from .conftest import small

# float64 throughout: these identities hold to rounding error, so 1e-5 leaves five
# orders of magnitude of headroom and still catches any wrong term (a missing z-score
# Jacobian alone is O(1)).
TOL = 1e-5


def _data(features: int, context: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(n, features, generator=g, dtype=torch.float64) * 2 + 1
    # Far outside the spline interval (up to 27 standardised units): exercises the identity
    # tails. Not farther: a random conditioner fed +-100 units makes its spline so steep
    # (derivatives near the 1e-3 floor) that undoing a coupling layer magnifies 1e-12 of
    # rounding in the layers after it to 1e-5, which would measure the random net, not the code.
    theta[:4] *= 5
    x = torch.randn(n, context, generator=g, dtype=torch.float64)
    return theta, x


def _fitted(name: str, features: int = 3, context: int = 2):
    est = small(name, features, context)
    theta, x = _data(features, context)
    est.standardize_(theta[4:] * 0.5 - 2, x * 3 + 1)  # non-trivial z-scoring
    return est, theta, x


def test_log_det_matches_brute_force(flow_name: str) -> None:
    flow, theta, x = _fitted(flow_name)
    z, ladj = flow.transform(theta, x)
    brute = log_abs_det_jacobian(lambda t: flow.transform(t, x)[0], theta)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(ladj, brute, rtol=0, atol=TOL)


def test_inverse_of_forward_is_identity(flow_name: str) -> None:
    flow, theta, x = _fitted(flow_name)
    z, ladj = flow.transform(theta, x)
    back, ladj_back = flow.inverse(z, x)
    torch.testing.assert_close(back, theta, rtol=0, atol=TOL)
    torch.testing.assert_close(ladj_back, ladj, rtol=0, atol=TOL)


def test_log_det_unconditional_and_one_feature(flow_name: str) -> None:
    for features, context in [(1, 2), (2, 0), (1, 0)]:
        flow, theta, x = _fitted(flow_name, features, context)
        c = x if context else None
        _, ladj = flow.transform(theta, c)
        brute = log_abs_det_jacobian(lambda t, c=c, f=flow: f.transform(t, c)[0], theta)
        torch.testing.assert_close(ladj, brute, rtol=0, atol=TOL)
        back, _ = flow.inverse(flow.transform(theta, c)[0], c)
        torch.testing.assert_close(back, theta, rtol=0, atol=TOL)


def _grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    return torch.linspace(lo, hi, n, dtype=torch.float64), (hi - lo) / (n - 1)


def test_density_integrates_to_one_in_1d(name: str) -> None:
    est = small(name, 1, 2, stretch=1.3)  # non-trivial, but with its mass on the grid
    est.standardize_(torch.randn(100, 1, dtype=torch.float64) * 0.7 + 2, torch.randn(100, 2))
    grid, h = _grid(-15.0, 19.0, 20_001)
    for c in torch.randn(3, 2, dtype=torch.float64):
        mass = torch.trapezoid(est.log_prob(grid[:, None], c).exp(), dx=h)
        # Trapezoid error at h = 1.7e-3 is ~h^2 f'' ~ 1e-6 (observed <= 4e-6); the mass
        # beyond the grid is negligible. 1e-4 catches a density off by 0.01%.
        assert abs(mass.item() - 1) < 1e-4


def test_density_integrates_to_one_in_2d(name: str) -> None:
    est = small(name, 2, 2, stretch=1.3)
    grid, h = _grid(-12.0, 12.0, 601)
    mesh = torch.cartesian_prod(grid, grid)
    c = torch.randn(2, dtype=torch.float64)
    dens = est.log_prob(mesh, c).exp().reshape(601, 601)
    mass = torch.trapezoid(torch.trapezoid(dens, dx=h), dx=h)
    # h = 0.04: trapezoid error ~h^2 * curvature, observed <= 1e-4 for these unit-scale
    # densities (splines have piecewise curvature); 1e-3 catches a density off by 0.1%.
    assert abs(mass.item() - 1) < 1e-3


def test_spline_is_monotonic_continuous_and_identity_outside() -> None:
    spline = Spline(bins=6, bound=3.0).double()
    g = torch.Generator().manual_seed(0)
    p = tuple(torch.randn(1, s, generator=g, dtype=torch.float64) * 2 for s in spline.shapes)
    x = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    params = tuple(q.expand(x.shape[0], -1) for q in p)
    y, ladj = spline(x, params)
    assert (y.diff() > 0).all()
    outside = x.abs() >= 3
    torch.testing.assert_close(y[outside], x[outside])
    assert (ladj[outside] == 0).all()
    # the derivative is continuous at the bounds (boundary derivatives are 1)
    near = torch.tensor([-3 + 1e-12, 3 - 1e-12], dtype=torch.float64)
    _, ladj_near = spline(near, tuple(q.expand(2, -1) for q in p))
    torch.testing.assert_close(ladj_near, torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_autoregressive_sampling_is_one_pass_per_dimension() -> None:
    from sbibench.nn import MAF

    flow = MAF(4, 2, transforms=2)
    full_passes, steps = [], []
    for layer in flow.layers:
        if hasattr(layer, "made"):
            layer.made.register_forward_hook(lambda *args: full_passes.append(1))
    affine = flow.layers[0].univariate  # one (parameter-free) instance shared by the layers
    original = affine.inverse
    affine.inverse = lambda y, p: steps.append(y.shape) or original(y, p)
    flow.sample(1000, torch.zeros(2))
    # 2 layers x 4 features: one prefix pass each, vectorised over the 1000 samples,
    # and never a full MADE pass
    assert steps == [(1000,)] * 8
    assert not full_passes


def test_log_prob_gradients_reach_every_parameter(name: str) -> None:
    est = small(name, 3, 2)
    theta, x = _data(3, 2)
    est.log_prob(theta[4:], x[4:]).mean().backward()
    for pname, p in est.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("features", [1, 3])
def test_sample_and_log_prob_agree_with_log_prob(name: str, features: int) -> None:
    est = small(name, features, 2)
    est.standardize_(torch.randn(50, features) * 3, torch.randn(50, 2))
    c = torch.randn(4, 2, dtype=torch.float64)
    samples, log_q = est.sample_and_log_prob(50, c)
    again = est.log_prob(samples.reshape(-1, features), c.repeat(50, 1)).reshape(50, 4)
    torch.testing.assert_close(log_q, again, rtol=0, atol=1e-8)
    assert math.isfinite(log_q.sum().item())


def test_sampling_is_differentiable(name: str) -> None:
    est = small(name, 3, 2)
    c = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    samples, log_q = est.sample_and_log_prob(8, c)
    (samples.sum() + log_q.sum()).backward()
    assert torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
def test_made_is_autoregressive_in_its_order(order: list[int] | None) -> None:
    from sbibench.nn import MADE

    made = MADE(4, 2, (1, 3), (7, 5), torch.nn.Tanh, order).double()  # no dead units
    x = torch.randn(4, dtype=torch.float64)
    c = torch.randn(2, dtype=torch.float64)

    def flat(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([p[0] for p in made(v[None], c[None])], dim=-1)  # (D, P)

    jac = torch.autograd.functional.jacobian(flat, x)  # (D, P, D)
    rank = torch.argsort(torch.tensor(order if order else [0, 1, 2, 3]))
    allowed = rank[None, :] < rank[:, None]  # params of feature i may see feature j
    assert (jac.abs().sum(1)[~allowed] == 0).all()
    assert (jac.abs().sum(1)[allowed] > 0).all()  # and do see all of them


def test_permutation_layer() -> None:
    from sbibench.nn.transforms import Permutation

    layer = Permutation(torch.tensor([2, 0, 1]))
    x = torch.randn(5, 3)
    y, ladj = layer(x)
    assert torch.equal(y[:, 0], x[:, 2]) and torch.equal(ladj, torch.zeros(5))
    assert torch.equal(layer.inverse(y)[0], x)


def test_lu_linear_away_from_the_identity():
    """The flows above start their LU layers at the identity, where a wrong factor would not
    show: here every parameter is random, and the log-determinant matches the brute-force
    Jacobian and the inverse undoes the forward map."""
    from sbibench.nn.transforms import LULinear

    g = torch.Generator().manual_seed(5)
    layer = LULinear(4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    y, ladj = layer(x)
    brute = log_abs_det_jacobian(lambda t: layer(t)[0], x)
    torch.testing.assert_close(ladj, brute, rtol=0, atol=TOL)
    back, ladj_back = layer.inverse(y)
    torch.testing.assert_close(back, x, rtol=0, atol=TOL)
    torch.testing.assert_close(ladj_back, ladj, rtol=0, atol=TOL)
