"""The result type shared by every sample-based score, input checks, and noise floors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["Estimate", "as_calibration_draws", "as_samples", "noise_floor"]


@dataclass(frozen=True)
class Estimate:
    """A metric's value with the estimator that produced it (the score registry's entries,
    `sbibench.scoring.Score`, turn these into record columns).

    Every function in :mod:`sbibench.metrics` returns an ``Estimate``, so that a record
    always says how a number was obtained (e.g. exact transport or its fallback).

    Attributes:
        value: The score, a Python float.
        method: A short name of the estimator actually used, e.g. ``"exact"`` or
            ``"exact-subsample"``; it is stored next to the value in run records.
        details: Scalars describing the computation (sample sizes, bandwidth, null spread, ...).

    Example:
        >>> s = Estimate(0.5, "c2st-mlp", {"num_samples": 100})
        >>> float(s)
        0.5
    """

    value: float
    method: str
    details: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)


def as_samples(x: Tensor | np.ndarray, name: str, dtype: torch.dtype = torch.float64) -> Tensor:
    """Check that ``x`` is a finite sample set of shape (N, D) and return it as a tensor.

    Arguments:
        x: Samples, a tensor or array of shape (N, D).
        name: The argument's name, used in error messages.
        dtype: The floating dtype of the returned tensor.

    Returns:
        A detached tensor of shape (N, D) and the given dtype, on the CPU.

    Raises:
        ValueError: If ``x`` is not two-dimensional, is empty, or holds NaN or inf.
        TypeError: If ``x`` is neither a tensor nor an array.

    Example:
        >>> as_samples(np.zeros((3, 2)), "x").shape
        torch.Size([3, 2])
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    x = x.detach().to(device="cpu", dtype=dtype)
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = int(bad.any(dim=1).sum())
        raise ValueError(f"{name} holds NaN or inf in {rows} of {x.shape[0]} rows")
    return x


def check_pair(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, names: tuple[str, str] = ("x", "y")
) -> tuple[Tensor, Tensor]:
    """Check two sample sets with :func:`as_samples` and that their dimensions agree."""
    x = as_samples(x, names[0])
    y = as_samples(y, names[1])
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension D, "
            f"got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


def noise_floor(
    metric: Callable[..., Estimate],
    reference_a: Tensor | np.ndarray,
    reference_b: Tensor | np.ndarray,
    **kwargs: Any,
) -> Estimate:
    """The score a perfect method would get: ``metric`` between two exact sample sets.

    Sample-based scores are biased at finite sample size (empirical W2 in 10-D is
    dominated by it). The noise floor is the same estimator, with the same options,
    applied to two *independent* sets of exact-posterior samples of the same sizes as
    the sets being scored; metrics know no task, so the caller draws them (an analytic
    task draws them for free). Report a score next to its floor.

    Arguments:
        metric: A score function, e.g. :func:`~sbibench.metrics.c2st`.
        reference_a: Exact posterior samples, shape (N, D); use the size of the method's set.
        reference_b: Independent exact posterior samples, shape (M, D); the reference's size.
        kwargs: Options passed on to ``metric`` (use the same as for the score itself).

    Returns:
        The metric's :class:`Estimate`, its ``method`` suffixed with ``"/noise-floor"``.

    Example:
        >>> from sbibench.metrics import mmd
        >>> a, b = torch.randn(200, 2), torch.randn(200, 2)
        >>> noise_floor(mmd, a, b).method
        'mmd2-unbiased/noise-floor'
    """
    if not callable(metric):
        raise TypeError(f"metric must be callable, got {type(metric).__name__}")
    score = metric(reference_a, reference_b, **kwargs)
    if not isinstance(score, Estimate):
        raise TypeError(f"metric must return an Estimate, got {type(score).__name__}")
    return Estimate(score.value, f"{score.method}/noise-floor", dict(score.details))


def as_calibration_draws(
    theta: Tensor | np.ndarray, samples: Tensor | np.ndarray
) -> tuple[Tensor, Tensor]:
    """``theta`` (N, D) and ``samples`` (N, L, D), L posterior draws for each of N datasets, as
    float64 tensors; ValueError naming the shapes when they do not match, or on NaN or inf."""
    theta = as_samples(theta, "theta")
    samples = torch.as_tensor(samples).detach().to(torch.float64)
    if (
        samples.dim() != 3
        or samples.shape[0] != theta.shape[0]
        or samples.shape[2] != theta.shape[1]
    ):
        raise ValueError(
            f"samples must have shape (N, L, D) = ({theta.shape[0]}, L, {theta.shape[1]}) "
            f"to match theta, got {tuple(samples.shape)}"
        )
    if not torch.isfinite(samples).all():
        raise ValueError("samples holds NaN or inf")
    return theta, samples
