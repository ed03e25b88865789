"""Inference methods behind one interface, and their registry."""

from __future__ import annotations

import dataclasses
import importlib
from importlib.metadata import entry_points
from typing import Any

from sbibench.methods.base import (
    BudgetError,
    HasLogProb,
    HasSampleBatch,
    HasUnnormalizedLogProb,
    Posterior,
    Timings,
    config_hash,
)

__all__ = [
    "METHODS",
    "BudgetError",
    "HasLogProb",
    "HasSampleBatch",
    "HasUnnormalizedLogProb",
    "Posterior",
    "Timings",
    "config_hash",
    "get_method",
    "is_amortized",
    "list_methods",
]

# name -> "module:attribute" of a configuration dataclass with `fit` (amortized) or `run`
# (sequential); imported on first use. Other packages add methods under the
# `sbibench.methods` entry-point group.
METHODS = {
    "exact": "sbibench.methods.oracle:Exact",
    "rej_abc": "sbibench.methods.abc:RejectionABC",
    "smc_abc": "sbibench.methods.smc_abc:SMCABC",
    "npe": "sbibench.methods.npe:NPE",
    "snpe_a": "sbibench.methods.snpe:SNPEA",
    "snpe_b": "sbibench.methods.snpe:SNPEB",
    "snpe_c": "sbibench.methods.snpe:SNPEC",
    "nle": "sbibench.methods.nle:NLE",
    "snle": "sbibench.methods.nle:SNLE",
    "nre": "sbibench.methods.nre:NRE",
    "bnre": "sbibench.methods.nre:BNRE",
    "nre_c": "sbibench.methods.nre:NRE_C",
    "snre": "sbibench.methods.nre:SNRE",
    "nre_b": "sbibench.methods.nre:NRE_B",
    "snre_b": "sbibench.methods.nre:SNRE_B",
    "fmpe": "sbibench.methods.fmpe:FMPE",
    "npse": "sbibench.methods.npse:NPSE",
    "oracle_mcmc": "sbibench.methods.exact_likelihood:OracleMCMC",
    "amortized_vi": "sbibench.methods.exact_likelihood:AmortizedVI",
    "external": "sbibench.methods.external:External",
    "sbibm": "sbibench.methods.external:Sbibm",
    "sbi": "sbibench.methods.sbi_adapter:Sbi",
}


def _registry() -> dict[str, str]:
    registry = dict(METHODS)
    for entry in entry_points(group="sbibench.methods"):
        registry.setdefault(entry.name, entry.value)
    return registry


def list_methods() -> list[str]:
    """Names of every known method, sorted."""
    return sorted(_registry())


def get_method(name: str, **config: Any) -> Any:
    """The method called ``name`` configured with ``config`` (its dataclass fields).

    Raises:
        ValueError: unknown method (lists the known ones), unknown config key (lists the
            method's fields), or a value out of range (`sbibench.methods.settings`).
    """
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(registry))}")
    module, attribute = registry[name].split(":")
    cls = getattr(importlib.import_module(module), attribute)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(unknown)} for method {name!r}; "
            f"its fields: {', '.join(sorted(fields))}"
        )
    from sbibench.methods.settings import check_settings

    method = cls(**config)
    check_settings(method)
    return method


def is_amortized(method: Any) -> bool:
    """True for a method with ``fit`` (one fit serves every observation); a method offering
    both says which through an ``amortized`` attribute."""
    if hasattr(method, "amortized"):
        return bool(method.amortized)
    if hasattr(method, "fit"):
        return True
    if hasattr(method, "run"):
        return False
    raise TypeError(f"{method!r} has neither fit(task, num_simulations, seed) nor run(...)")
