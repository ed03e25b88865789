"""Analytic model families: priors, simulators, exact posteriors and exact likelihoods."""

from __future__ import annotations

from sbibench.models.common import Family, Model
from sbibench.registry import lookup

__all__ = ["FAMILIES", "Family", "Model", "get_family"]

# name -> "module:attribute", imported on first use.
FAMILIES = {
    "poisson_gamma": "sbibench.models.poisson_gamma:POISSON_GAMMA",
    "beta_binomial": "sbibench.models.beta_binomial:BETA_BINOMIAL",
    "dirichlet_multinomial": "sbibench.models.dirichlet_multinomial:DIRICHLET_MULTINOMIAL",
    "normal_mean": "sbibench.models.linear_gaussian:NORMAL_MEAN",
    "normal_mean_sets": "sbibench.models.iid_sets:NORMAL_MEAN_SETS",
    "normal_inverse_gamma": "sbibench.models.normal_inverse_gamma:NORMAL_INVERSE_GAMMA",
    "linear_gaussian": "sbibench.models.linear_gaussian:LINEAR_GAUSSIAN",
    "linear_gaussian_vae": "sbibench.models.linear_gaussian:LINEAR_GAUSSIAN_VAE",
    "uniform_gaussian_mixture": "sbibench.models.uniform_mixture:UNIFORM_MIXTURE",
    "two_moons": "sbibench.models.two_moons:TWO_MOONS",
}


def get_family(name: str) -> Family:
    """The family called ``name``; ValueError listing the known ones otherwise."""
    return lookup(FAMILIES, name, "model family")
