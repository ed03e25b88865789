"""The recipe for a new method (docs/add-a-method.md): its one Python block, run as written."""

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from sbibench.methods import (
    METHODS,
    HasLogProb,
    Posterior,
    get_method,
    is_amortized,
    register_method,
)

GUIDE = Path(__file__).parents[2] / "docs" / "add-a-method.md"


def _run_the_guide() -> types.ModuleType:
    """Execute the guide's Python block as a module of its own, as a script would be."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) == 1, "the guide holds one complete Python example"
    module = types.ModuleType("sbibench_add_a_method_guide")
    sys.modules[module.__name__] = module
    try:
        exec(compile(blocks[0], str(GUIDE), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module.__name__]
        raise
    return module


@pytest.fixture
def guide():
    before = dict(METHODS)
    module = _run_the_guide()
    yield module
    METHODS.clear()
    METHODS.update(before)
    del sys.modules[module.__name__]


def test_the_guides_method_runs_as_written(guide):
    task, posterior = guide.task, guide.posterior
    assert METHODS["gaussian_npe"] is guide.GaussianNPE  # the class itself, in this process
    assert is_amortized(get_method("gaussian_npe"))
    assert isinstance(posterior, Posterior) and isinstance(posterior, HasLogProb)
    assert posterior.num_simulations_used == 1000 and posterior.num_invalid_simulations == 0
    x = torch.stack([task.observation(1), task.observation(2)])
    batch = posterior.sample(4000, x, seed=0)
    assert batch.shape == (4000, 2, 1) and batch.dtype == torch.float64
    assert torch.equal(batch[:, 0], guide.samples)
    assert torch.equal(batch[:, 1], posterior.sample(4000, task.observation(2), seed=0))
    # The exact posterior of normal_mean lies in the family: the fitted mean is within 0.1 of
    # the exact one, a third of its sd of 0.31.
    for k in (1, 2):
        mean, _ = task.reference_moments(k)
        assert abs(batch[:, k - 1].mean() - mean).max() < 0.1
    theta = task.reference_samples(1)[:5]
    assert posterior.log_prob(theta, task.observation(1)).shape == (5,)
    # Its settings are checked by the rules declared with them, its own and those it shares.
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        get_method("gaussian_npe", learning_rate=-1.0)
    with pytest.raises(ValueError, match="patience must be a whole number >= 1"):
        get_method("gaussian_npe", patience=0)


def test_register_method_refuses_what_it_cannot_register(guide):
    register_method("gaussian_npe", guide.GaussianNPE)  # again, the same: nothing changes
    with pytest.raises(ValueError, match="already registered as 'sbibench.methods.npe:NPE'"):
        register_method("npe", guide.GaussianNPE)
    with pytest.raises(TypeError, match="method must be a dataclass or 'module:attribute'"):
        register_method("mine", object)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_method("", guide.GaussianNPE)
