"""Fixtures for the nn tests: estimators built from the registry."""

import pytest
import torch

from sbibench.nn import ESTIMATORS, build_estimator

FLOWS = [name for name in ESTIMATORS if name != "mdn"]


def small(
    name: str, features: int, context: int, stretch: float = 2.0, **options
) -> torch.nn.Module:
    """A small estimator of the registry, in float64, its default weights times ``stretch``."""
    options = {"hidden_features": (16, 16), **options}
    if name == "mdn":
        options.setdefault("components", 3)
    else:
        options.setdefault("transforms", 3)
    torch.manual_seed(1)
    est = build_estimator(name, features, context, **options).double()
    with torch.no_grad():  # stretch the default init so every layer is far from the identity
        for p in est.parameters():
            p.mul_(stretch)
    return est


@pytest.fixture(params=sorted(ESTIMATORS))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=FLOWS)
def flow_name(request: pytest.FixtureRequest) -> str:
    return request.param
