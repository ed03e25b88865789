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
    "register_method",
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
            method's fields), or a value that breaks its setting's rule
            (`sbibench.methods.settings`).
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


def register_method(name: str, method: type | str) -> None:
    """Add a method to the registry as ``name``: its configuration dataclass, or the
    ``"module:attribute"`` path of one. A class is registered by its import path, so its module
    must be importable (a script's own classes are, in its process, as ``__main__``).

    Raises:
        ValueError: an empty name, a class that is not at the top of its module, or a name
            already registered to another method.
        TypeError: ``method`` is neither a dataclass nor a ``"module:attribute"`` string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if isinstance(method, type) and dataclasses.is_dataclass(method):
        if "<locals>" in method.__qualname__:
            raise ValueError(f"method {method.__qualname__} must be defined at module level")
        method = f"{method.__module__}:{method.__qualname__}"
    elif not isinstance(method, str) or method.count(":") != 1:
        raise TypeError(f"method must be a dataclass or 'module:attribute', got {method!r}")
    if METHODS.setdefault(name, method) != method:
        raise ValueError(f"method {name!r} is already registered as {METHODS[name]!r}")


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
