"""Inference methods behind one interface, and their registry."""

from __future__ import annotations

import dataclasses
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
from sbibench.methods.settings import check_settings
from sbibench.registry import lookup, with_entry_points

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
    "method_paths",
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


def method_paths() -> dict[str, Any]:
    """Every known method's ``"module:attribute"`` (or its class, registered at run time):
    `METHODS` and the ``sbibench.methods`` entry points of other packages (a built-in name
    wins)."""
    return with_entry_points(METHODS, "methods")


def list_methods() -> list[str]:
    """Names of every known method, sorted."""
    return sorted(method_paths())


def get_method(name: str, **config: Any) -> Any:
    """The method called ``name`` configured with ``config`` (its dataclass fields).

    Raises:
        ValueError: unknown method (lists the known ones), unknown config key (lists the
            method's fields), or a value that breaks its setting's rule
            (`sbibench.methods.settings`).
    """
    cls = lookup(method_paths(), name, "method")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(unknown)} for method {name!r}; "
            f"its fields: {', '.join(sorted(fields))}"
        )
    method = cls(**config)
    check_settings(method)
    return method


def register_method(name: str, method: type | str) -> None:
    """Add a method to the registry as ``name``: its configuration dataclass, or the
    ``"module:attribute"`` path of one. A class registered by itself is known in this process
    and in the worker processes that import the module registering it (a script's top level
    runs again in each spawned worker); a path is imported where it is needed.

    Raises:
        ValueError: an empty name, or a name already registered to another method.
        TypeError: ``method`` is neither a dataclass nor a ``"module:attribute"`` string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    is_class = isinstance(method, type) and dataclasses.is_dataclass(method)
    if not is_class and (not isinstance(method, str) or method.count(":") != 1):
        raise TypeError(f"method must be a dataclass or 'module:attribute', got {method!r}")
    known = METHODS.get(name)
    if known is not None and _where(known) != _where(method):
        raise ValueError(f"method {name!r} is already registered as {known!r}")
    METHODS[name] = method


def _where(method: type | str) -> str:
    """A registry entry's ``"module:attribute"``, whether it is a path or a class."""
    return method if isinstance(method, str) else f"{method.__module__}:{method.__qualname__}"


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
