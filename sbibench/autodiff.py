"""Gradient kernels: batched scores, JVP/VJP, Hessian-vector products, divergences, log-determinants,
and the ODE solver that integrates a divergence along a path.

Batched functions map ``(N, D)`` to ``(N,)`` (a log-density) or ``(N, D)`` (a vector
field) with **independent rows**: row ``n`` of the output depends on row ``n`` of the
input only, as for ``lambda theta: flow.log_prob(theta, x)``. Under that contract one
reverse pass over the summed output gives every row's gradient, and one forward pass
per tangent gives every row's Jacobian-vector product. These are what MCMC (MALA/HMC),
kernel Stein discrepancies, flow matching and score-based methods call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, vmap

__all__ = [
    "divergence",
    "hessian",
    "hutchinson_divergence",
    "hvp",
    "jvp",
    "log_abs_det_jacobian",
    "odeint",
    "score",
    "score_vmap",
    "vjp",
]

Batched = Callable[[Tensor], Tensor]
TimeField = Callable[[Tensor, Tensor], Tensor]  # (N, D) states and a scalar time -> (N, D)


def score(log_prob: Batched, theta: Tensor, *, create_graph: bool = False) -> Tensor:
    r"""Batched score :math:`\nabla_\theta \log p(\theta)` by one reverse-mode pass.

    Arguments:
        log_prob: Batched log-density ``(N, D) -> (N,)`` with independent rows.
        theta: Points ``(N, D)``.
        create_graph: Keep the graph of the gradient (for higher derivatives).

    Returns:
        The scores, ``(N, D)``.

    Example:
        >>> score(lambda t: -0.5 * t.square().sum(-1), torch.ones(2, 3))
        tensor([[-1., -1., -1.],
                [-1., -1., -1.]])
    """
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob(theta).sum(), theta, create_graph=create_graph)
    return g


def score_vmap(
    log_prob: Callable[[Tensor], Tensor], theta: Tensor, *, chunk_size: int | None = None
) -> Tensor:
    r"""Batched score with ``torch.func.vmap(grad(log_prob))``.

    Arguments:
        log_prob: Log-density of **one** point, ``(D,) -> ()``.
        theta: Points ``(N, D)``.
        chunk_size: Rows per vectorised chunk (``None``: all at once).

    Returns:
        The scores, ``(N, D)``.

    Example:
        >>> score_vmap(lambda t: -0.5 * t.square().sum(), torch.ones(2, 3))[0]
        tensor([-1., -1., -1.])
    """
    return vmap(grad(log_prob), chunk_size=chunk_size)(theta)


def jvp(fn: Batched, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    r"""Forward-mode Jacobian-vector product: ``(fn(x), J v)`` in one pass.

    Arguments:
        fn: Batched function with independent rows.
        x: Points ``(N, D)``.
        v: Tangents ``(N, D)``.

    Returns:
        ``fn(x)`` and, per row, :math:`J_n v_n` (shaped like ``fn(x)``).
    """
    return torch.func.jvp(fn, (x,), (v,))


def vjp(fn: Batched, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    r"""Reverse-mode vector-Jacobian product: ``(fn(x), v^T J)`` in one pass.

    Arguments:
        fn: Batched function with independent rows.
        x: Points ``(N, D)``.
        v: Cotangents shaped like ``fn(x)``.

    Returns:
        ``fn(x)`` and, per row, :math:`v_n^\top J_n`, ``(N, D)``.
    """
    out, pullback = torch.func.vjp(fn, x)
    return out, pullback(v)[0]


def hvp(log_prob: Batched, x: Tensor, v: Tensor) -> Tensor:
    r"""Batched Hessian-vector product :math:`\nabla^2 \log p(x_n)\, v_n`, forward over reverse.

    Arguments:
        log_prob: Batched scalar function ``(N, D) -> (N,)`` with independent rows.
        x: Points ``(N, D)``.
        v: Vectors ``(N, D)``.

    Returns:
        ``(N, D)``.

    Example:
        >>> hvp(lambda t: (t**3).sum(-1), torch.full((1, 2), 2.0), torch.ones(1, 2))
        tensor([[12., 12.]])
    """

    def gradient(y: Tensor) -> Tensor:
        return grad(lambda z: log_prob(z).sum())(y)

    return torch.func.jvp(gradient, (x,), (v,))[1]


def _jacobian(y: Tensor, x: Tensor) -> Tensor:
    """Per-row Jacobians ``(N, D_out, D)`` of ``y`` ``(N, D_out)`` with respect to ``x``
    ``(N, D)``, rows independent: one reverse pass per output coordinate."""
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, dim=1)


def hessian(log_prob: Batched, x: Tensor) -> Tensor:
    r"""Batched Hessians :math:`\nabla^2 \log p(x_n)`, ``(N, D, D)``: reverse over reverse.

    Arguments:
        log_prob: Batched scalar function ``(N, D) -> (N,)`` with independent rows.
        x: Points ``(N, D)``.

    Example:
        >>> hessian(lambda t: (t[:, 0] * t[:, 1]), torch.ones(1, 2))
        tensor([[[0., 1.],
                 [1., 0.]]])
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob(x).sum(), x, create_graph=True)
        return _jacobian(g, x)


def divergence(
    field: Batched, x: Tensor, *, chunk_size: int | None = None, with_value: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Exact divergence :math:`\nabla \cdot f(x_n) = \operatorname{tr} J_n`.

    ``D`` forward-mode JVPs along the basis vectors, vectorised with ``vmap``
    (memory :math:`D \times N \times D`; ``chunk_size`` bounds it).

    Arguments:
        field: Batched vector field ``(N, D) -> (N, D)`` with independent rows.
        x: Points ``(N, D)``.
        chunk_size: Basis vectors per vectorised chunk.
        with_value: Also return ``field(x)``.

    Returns:
        The divergences ``(N,)`` (and ``field(x)`` first if ``with_value``).

    Example:
        >>> divergence(lambda y: y**2, torch.tensor([[1.0, 2.0]]))
        tensor([6.])
    """
    n, d = x.shape
    basis = torch.eye(d, dtype=x.dtype, device=x.device)[:, None, :].expand(d, n, d)

    def column(v: Tensor) -> tuple[Tensor, Tensor]:
        return torch.func.jvp(field, (x,), (v,))

    values, tangents = vmap(column, chunk_size=chunk_size)(basis)  # (D, N, D) each
    div = torch.diagonal(tangents, dim1=0, dim2=2).sum(-1)
    return (values[0], div) if with_value else div


def hutchinson_divergence(
    field: Batched,
    x: Tensor,
    *,
    probes: int = 1,
    noise: str = "rademacher",
    generator: torch.Generator | None = None,
    with_value: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Hutchinson's unbiased estimate :math:`\mathbb{E}_\epsilon[\epsilon^\top J \epsilon]` of the divergence.

    One forward-mode JVP per probe. Rademacher probes give the smallest variance
    (:math:`2 \sum_{i \ne j} J_{ij}^2` per probe for a symmetric part; Gaussian probes
    add :math:`2 \sum_i J_{ii}^2`).

    Arguments:
        field: Batched vector field ``(N, D) -> (N, D)`` with independent rows.
        x: Points ``(N, D)``.
        probes: Number of probe vectors averaged per row.
        noise: ``"rademacher"`` or ``"gaussian"``.
        generator: Source of the probes.
        with_value: Also return ``field(x)``.

    Returns:
        Estimated divergences ``(N,)`` (and ``field(x)`` first if ``with_value``).
    """
    if noise not in ("rademacher", "gaussian"):
        raise ValueError(f"noise must be 'rademacher' or 'gaussian', got {noise!r}")
    shape = (probes, *x.shape)
    if noise == "gaussian":
        eps = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    else:
        bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
        eps = bits.to(x.dtype) * 2 - 1

    def quadratic(e: Tensor) -> tuple[Tensor, Tensor]:
        value, jv = torch.func.jvp(field, (x,), (e,))
        return value, (e * jv).sum(-1)

    values, quads = vmap(quadratic)(eps)
    est = quads.mean(0)
    return (values[0], est) if with_value else est


def log_abs_det_jacobian(fn: Batched, x: Tensor) -> Tensor:
    r"""Brute-force :math:`\log|\det \partial f / \partial x|` per row from full Jacobians.

    Meant for tests of flows' log-determinants on small dimensions: ``D`` reverse
    passes build the Jacobians ``(N, D, D)``, then a batched ``slogdet``.

    Arguments:
        fn: Batched bijection ``(N, D) -> (N, D)`` with independent rows.
        x: Points ``(N, D)``.

    Returns:
        ``(N,)``.

    Example:
        >>> log_abs_det_jacobian(lambda y: 3 * y, torch.zeros(1, 2))
        tensor([2.1972])
    """

    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        jac = _jacobian(fn(x), x)
    return torch.linalg.slogdet(jac)[1]


def odeint(
    field: TimeField, y: Tensor, times: Tensor, with_divergence: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Classical RK4 along the grid ``times`` ``(K + 1,)`` from ``y`` ``(N, D)`` at ``times[0]``.

    Arguments:
        field: ``field(y, t)``: a batched vector field ``(N, D) -> (N, D)`` with independent
            rows at a scalar time ``t``.
        y: Initial states ``(N, D)``.
        times: The grid, increasing or decreasing.
        with_divergence: Also integrate the exact divergence (:func:`divergence`) along the
            path, as the instantaneous change of variables needs (Chen et al. 2018).

    Returns:
        The states at ``times[-1]`` ``(N, D)``, and with ``with_divergence`` also
        :math:`\int \nabla \cdot f \, dt` ``(N,)``, signed by the direction of the grid.

    Example:
        >>> y = odeint(lambda y, t: -y, torch.ones(1, 1), torch.linspace(0, 1, 11))
        >>> round(y.item(), 4)  # exp(-1)
        0.3679
    """

    def step(y_: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if not with_divergence:
            return field(y_, t), torch.zeros(y_.shape[0], dtype=y_.dtype)
        return divergence(lambda z: field(z, t), y_, with_value=True)

    total = torch.zeros(y.shape[0], dtype=y.dtype)
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        h = t1 - t0
        k1, d1 = step(y, t0)
        k2, d2 = step(y + h / 2 * k1, t0 + h / 2)
        k3, d3 = step(y + h / 2 * k2, t0 + h / 2)
        k4, d4 = step(y + h * k3, t1)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        total = total + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    return (y, total) if with_divergence else y
