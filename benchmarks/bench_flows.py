"""Speed and peak memory of the density estimators: log_prob, sample, one training step.

Grid: estimator x parameter dimension {2, 10, 50} x batch {256, 10,000}, context
dimension 10, builders' default architectures (5 layers or 10 components, 2x50
hidden). ``batch`` is the number of points evaluated, samples drawn (for one context)
or the minibatch of the training step (Adam, loss -mean log_prob, as in sbi).
Torch runs on one thread so that figures compare across commits and machines.
"""

import torch

from sbibench.nn import build_estimator

CONTEXT = 10


def _warm_up() -> None:
    """Pay torch's one-off costs once, at import: the first optimizer imports torch's
    compiler stack (~1 s). asv forks every run from a server that imported this module,
    so each run inherits a warm process. One thread: no thread pool to break by forking."""
    torch.set_num_threads(1)
    for name in ("maf", "nsf", "realnvp", "mdn"):
        est = build_estimator(name, 3, CONTEXT, hidden_features=(8,))
        optimizer = torch.optim.Adam(est.parameters())
        est.log_prob(torch.randn(8, 3), torch.randn(8, CONTEXT)).sum().backward()
        optimizer.step()
        with torch.no_grad():
            est.sample(8, torch.randn(CONTEXT))


_warm_up()


class Estimators:
    params = (["maf", "nsf", "realnvp", "mdn"], [2, 10, 50], [256, 10_000])
    param_names = ["estimator", "features", "batch"]
    timeout = 120

    def setup(self, name: str, features: int, batch: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        self.est = build_estimator(name, features, CONTEXT)
        self.theta = torch.randn(batch, features)
        self.x = torch.randn(batch, CONTEXT)
        self.est.standardize_(self.theta, self.x)
        self.optimizer = torch.optim.Adam(self.est.parameters(), lr=5e-4)
        self.batch = batch

    def _log_prob(self) -> None:
        with torch.no_grad():
            self.est.log_prob(self.theta, self.x)

    def _sample(self) -> None:
        with torch.no_grad():
            self.est.sample(self.batch, self.x[0])

    def _train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = -self.est.log_prob(self.theta, self.x).mean()
        loss.backward()
        self.optimizer.step()

    def time_log_prob(self, *args: object) -> None:
        self._log_prob()

    def time_sample(self, *args: object) -> None:
        self._sample()

    def time_train_step(self, *args: object) -> None:
        self._train_step()

    def peakmem_log_prob(self, *args: object) -> None:
        self._log_prob()

    def peakmem_sample(self, *args: object) -> None:
        self._sample()

    def peakmem_train_step(self, *args: object) -> None:
        self._train_step()
