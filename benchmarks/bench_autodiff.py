"""Speed of the autodiff kernels at a batch of 10,000 points.

Log-density kernels (score, vmap score, Hessian-vector product) differentiate a MAF
conditioned on one context; field kernels (JVP, VJP, exact and Hutchinson divergence)
differentiate a flow-matching vector field. One torch thread.
"""

import torch

from sbibench import autodiff
from sbibench.nn import MAF, VectorField

BATCH = 10_000


def _warm_up() -> None:
    """First torch.func calls cost ~1 s: pay it once at import, in the process asv
    forks every run from. One thread, so no thread pool is broken by the fork."""
    torch.set_num_threads(1)
    x = torch.randn(4, 2)
    autodiff.hvp(lambda t: (t**3).sum(-1), x, x)
    autodiff.divergence(torch.sin, x)
    autodiff.hutchinson_divergence(torch.sin, x)
    autodiff.score_vmap(lambda t: (t**2).sum(), x)
    autodiff.vjp(torch.sin, x, x)


_warm_up()


class LogDensityKernels:
    params = [2, 10]
    param_names = ["features"]

    def setup(self, features: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        self.flow = MAF(features, 10, transforms=3)
        self.context = torch.randn(10)
        self.theta = torch.randn(BATCH, features)
        self.v = torch.randn(BATCH, features)
        self.precision = torch.eye(features) + 0.1

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(theta, self.context)

    def time_score(self, features: int) -> None:
        autodiff.score(self.log_prob, self.theta)

    def time_score_vmap_gaussian(self, features: int) -> None:
        autodiff.score_vmap(lambda t: -0.5 * t @ self.precision @ t, self.theta)

    def time_hvp(self, features: int) -> None:
        autodiff.hvp(self.log_prob, self.theta, self.v)


class FieldKernels:
    params = [2, 10]
    param_names = ["features"]

    def setup(self, features: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        self.net = VectorField(features, 10)
        self.context = torch.randn(10)
        self.x = torch.randn(BATCH, features)
        self.v = torch.randn(BATCH, features)

    def field(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, 0.5, self.context)

    def time_jvp(self, features: int) -> None:
        autodiff.jvp(self.field, self.x, self.v)

    def time_vjp(self, features: int) -> None:
        autodiff.vjp(self.field, self.x, self.v)

    def time_divergence_exact(self, features: int) -> None:
        autodiff.divergence(self.field, self.x)

    def time_divergence_hutchinson(self, features: int) -> None:
        autodiff.hutchinson_divergence(self.field, self.x)

    def peakmem_divergence_exact(self, features: int) -> None:
        autodiff.divergence(self.field, self.x)
