"""Autodiff kernels against analytic gradients, Hessians, divergences and log-determinants."""

import pytest
import torch

from sbibench import autodiff as ad

D = 4
DT = torch.float64


def _matrices() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(D, D, generator=g, dtype=DT)
    precision = a @ a.T + D * torch.eye(D, dtype=DT)
    b = torch.randn(D, generator=g, dtype=DT)
    x = torch.randn(50, D, generator=g, dtype=DT)
    return precision, b, x


def _log_prob(precision: torch.Tensor, b: torch.Tensor):
    """A Gaussian-like log-density plus a cubic: grad and Hessian known in closed form."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ precision) * x).sum(-1) + x @ b + (x**3).sum(-1) / 6

    def grad(x: torch.Tensor) -> torch.Tensor:
        return -x @ precision + b + x**2 / 2

    def hess(x: torch.Tensor) -> torch.Tensor:
        return -precision + torch.diag_embed(x)

    return f, grad, hess


# float64 and exact formulas: agreement to rounding, 1e-10 is far above it.
TOL = {"rtol": 0, "atol": 1e-10}


def test_score_reverse_mode_and_vmap_agree_with_analytic() -> None:
    precision, b, x = _matrices()
    f, grad, _ = _log_prob(precision, b)
    torch.testing.assert_close(ad.score(f, x), grad(x), **TOL)
    torch.testing.assert_close(ad.score_vmap(lambda y: f(y[None])[0], x), grad(x), **TOL)
    torch.testing.assert_close(ad.score_vmap(lambda y: f(y[None])[0], x, chunk_size=7), grad(x))
    assert not ad.score(f, x).requires_grad


def test_hessian_and_hvp() -> None:
    precision, b, x = _matrices()
    f, _, hess = _log_prob(precision, b)
    v = torch.randn(50, D, dtype=DT)
    torch.testing.assert_close(ad.hessian(f, x), hess(x), **TOL)
    torch.testing.assert_close(ad.hvp(f, x, v), (hess(x) @ v[..., None])[..., 0], **TOL)


def _field() -> tuple:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(D, D, generator=g, dtype=DT)

    def f(x: torch.Tensor) -> torch.Tensor:
        return x @ a.T + torch.sin(x) * x.roll(1, dims=-1)

    def jac(x: torch.Tensor) -> torch.Tensor:
        j = a.expand(x.shape[0], D, D).clone()
        j += torch.diag_embed(torch.cos(x) * x.roll(1, dims=-1))
        idx = torch.arange(D)
        j[:, idx, (idx - 1) % D] += torch.sin(x)
        return j

    return f, jac


def test_jvp_and_vjp() -> None:
    f, jac = _field()
    x, v = torch.randn(30, D, dtype=DT), torch.randn(30, D, dtype=DT)
    value, jv = ad.jvp(f, x, v)
    torch.testing.assert_close(value, f(x), **TOL)
    torch.testing.assert_close(jv, (jac(x) @ v[..., None])[..., 0], **TOL)
    value, vj = ad.vjp(f, x, v)
    torch.testing.assert_close(vj, (v[:, None, :] @ jac(x))[:, 0], **TOL)


def test_exact_divergence() -> None:
    f, jac = _field()
    x = torch.randn(30, D, dtype=DT)
    expected = torch.diagonal(jac(x), dim1=1, dim2=2).sum(-1)
    torch.testing.assert_close(ad.divergence(f, x), expected, **TOL)
    value, div = ad.divergence(f, x, chunk_size=2, with_value=True)
    torch.testing.assert_close(div, expected, **TOL)
    torch.testing.assert_close(value, f(x), **TOL)


def test_hutchinson_is_exact_for_diagonal_jacobians_with_rademacher_probes() -> None:
    x = torch.randn(30, D, dtype=DT)
    # eps_i^2 = 1, so eps^T diag(J) eps = tr J for every probe
    est = ad.hutchinson_divergence(torch.sin, x, probes=3)
    torch.testing.assert_close(est, torch.cos(x).sum(-1), **TOL)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise: str) -> None:
    f, jac = _field()
    x = torch.randn(1, D, dtype=DT).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    value, est = ad.hutchinson_divergence(f, x, noise=noise, generator=g, with_value=True)
    exact = torch.diagonal(jac(x[:1]), dim1=1, dim2=2).sum()
    # 4000 independent single-probe estimates at one point: their mean is within
    # 4 standard errors of the exact divergence (fails by chance with p ~ 6e-5).
    assert abs(est.mean() - exact) < 4 * est.std() / 4000**0.5
    torch.testing.assert_close(value, f(x), **TOL)
    with pytest.raises(ValueError, match="noise"):
        ad.hutchinson_divergence(f, x, noise="uniform")


def test_log_abs_det_jacobian() -> None:
    f, jac = _field()
    x = torch.randn(20, D, dtype=DT)
    torch.testing.assert_close(ad.log_abs_det_jacobian(f, x), torch.linalg.slogdet(jac(x))[1])
    expected = torch.log1p(-(torch.tanh(x) ** 2)).sum(-1)
    torch.testing.assert_close(ad.log_abs_det_jacobian(torch.tanh, x), expected, **TOL)


def test_score_of_a_flow_matches_finite_differences() -> None:
    from sbibench.nn import MAF

    torch.manual_seed(0)
    flow = MAF(2, 1, transforms=2, hidden_features=(8,)).double()
    c = torch.randn(1, dtype=DT)
    theta = torch.randn(5, 2, dtype=DT)
    s = ad.score(lambda t: flow.log_prob(t, c), theta)
    h = 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=DT)
        e[i] = h
        fd = (flow.log_prob(theta + e, c) - flow.log_prob(theta - e, c)) / (2 * h)
        # central differences: error O(h^2 f''') + O(eps / h) ~ 1e-9
        torch.testing.assert_close(s[:, i], fd.detach(), rtol=0, atol=1e-6)
