"""A shared training loop: in-memory tensors, Adam, validation split, early stopping.

Every learned method reuses :func:`train` with its own loss: a callable over a minibatch
(the same rows of each training tensor) returning a scalar to minimise. NPE and NLE pass
``lambda theta, x: -flow.log_prob(theta, x).mean()``; NRE, flow matching and score
matching pass their own objectives.

Defaults follow the sbi package: batches of 200, learning rate 5e-4, 10% of the data
held out for validation, stop after 20 epochs without improvement of the validation
loss, gradient norm clipped at 5; the best state is restored at the end.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        epochs: Epochs run.
        best_epoch: Epoch (1-based) whose state was restored.
        best_validation_loss: Validation loss of that state.
        train_loss: Mean training loss of each epoch.
        validation_loss: Validation loss after each epoch.
        converged: Whether training stopped on ``patience`` (not on a budget).
        seconds: Wall time.
    """

    epochs: int
    best_epoch: int
    best_validation_loss: float
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    converged: bool = False
    seconds: float = 0.0


def _slices(n: int, batch_size: int, min_batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive minibatches of ``batch_size`` rows; a last one with fewer
    than ``min_batch_size`` rows joins the one before it, so every row is still visited."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_batch_size:
        starts.pop()
    return list(zip(starts, [*starts[1:], n], strict=True))


def _mean_loss(
    loss_fn: Callable[..., Tensor],
    tensors: Sequence[Tensor],
    batch_size: int,
    min_batch_size: int = 1,
) -> float:
    n = tensors[0].shape[0]
    total = 0.0
    for start, stop in _slices(n, batch_size, min_batch_size):
        chunk = [t[start:stop] for t in tensors]
        total += float(loss_fn(*chunk)) * chunk[0].shape[0]
    return total / n


def train(
    module: nn.Module,
    loss_fn: Callable[..., Tensor],
    tensors: Sequence[Tensor],
    *,
    batch_size: int = 200,
    learning_rate: float = 5e-4,
    max_epochs: int | None = None,
    validation_fraction: float = 0.1,
    patience: int = 20,
    clip_norm: float | None = 5.0,
    seed: int = 0,
    max_seconds: float | None = None,
    validation_batch_size: int = 10_000,
    min_batch_size: int = 1,
) -> TrainResult:
    r"""Minimise ``loss_fn`` over minibatches of ``tensors`` with Adam; early stopping.

    The rows are split once (by a seeded permutation) into training and validation
    sets; each epoch visits the training rows in a fresh seeded order, in minibatches
    that are slices of the shuffled tensors. After each epoch the validation loss is
    computed without gradients (in chunks, weighted by their size); training stops after
    ``patience`` epochs without improvement, after ``max_epochs`` or after
    ``max_seconds``, and the parameters and buffers of the best epoch are restored.

    The whole loop runs under a forked torch RNG seeded with ``seed``, so stochastic
    losses (noise levels, contrastive pairs) are reproducible too and the caller's
    global RNG is left untouched. Same seed, same machine: same result.

    Arguments:
        module: The module whose parameters are trained (and whose best state is kept).
        loss_fn: ``loss_fn(*minibatch) -> scalar``; the minibatch holds the same rows of
            each tensor.
        tensors: Training data, all with the same first dimension ``N``.
        batch_size: Minibatch size (sbi: 200).
        learning_rate: Adam's learning rate (sbi: 5e-4).
        max_epochs: Most epochs; ``None`` for no limit (sbi's default).
        validation_fraction: Share of rows held out (sbi: 0.1); at least one row.
        patience: Epochs without improvement before stopping (sbi: 20).
        clip_norm: Gradient norm clip (sbi: 5); ``None`` for none.
        seed: Seed of the split, the shuffles and the loss's randomness.
        max_seconds: Optional wall-time budget.
        validation_batch_size: Chunk size of the validation pass.
        min_batch_size: The fewest rows a minibatch (and the validation set) may have: a
            contrastive loss, which pairs each row with other rows of its minibatch, needs 2.
            A last minibatch of fewer rows joins the one before it.

    Returns:
        A :class:`TrainResult`.

    Example:
        >>> from sbibench.nn import MAF
        >>> theta, x = torch.randn(300, 2), torch.randn(300, 1)
        >>> flow = MAF(2, 1, transforms=1).standardize_(theta, x)
        >>> result = train(flow, lambda t, c: -flow.log_prob(t, c).mean(), (theta, x),
        ...                max_epochs=2)
        >>> result.epochs
        2
    """
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if (
        isinstance(min_batch_size, bool)
        or not isinstance(min_batch_size, int)
        or min_batch_size < 1
    ):
        raise ValueError(f"min_batch_size must be a whole number >= 1, got {min_batch_size!r}")
    n_val = max(min_batch_size, int(round(n * validation_fraction)))
    if n - n_val < min_batch_size:
        raise ValueError(
            f"not enough rows ({n}) for a training and a validation set of at least "
            f"{min_batch_size} each"
        )

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        perm = torch.randperm(n, generator=gen).to(tensors[0].device)
        val = [t[perm[:n_val]] for t in tensors]
        fit = [t[perm[n_val:]] for t in tensors]
        n_fit = n - n_val

        params = [p for p in module.parameters() if p.requires_grad]
        # foreach: one fused update over all parameter tensors (on CPU torch defaults to a
        # Python loop over them, a tenth of an SNPE-C fit's time)
        optimizer = torch.optim.Adam(params, lr=learning_rate, foreach=True)
        result = TrainResult(epochs=0, best_epoch=0, best_validation_loss=math.inf)
        best_state = copy.deepcopy(module.state_dict())
        while max_epochs is None or result.epochs < max_epochs:
            module.train()
            order = torch.randperm(n_fit, generator=gen).to(fit[0].device)
            shuffled = [t[order] for t in fit]
            total = 0.0
            for lo, hi in _slices(n_fit, batch_size, min_batch_size):
                batch = [t[lo:hi] for t in shuffled]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(*batch)
                loss.backward()
                if clip_norm is not None:
                    nn.utils.clip_grad_norm_(params, clip_norm)
                optimizer.step()
                total += loss.item() * batch[0].shape[0]
            module.eval()
            with torch.no_grad():
                val_loss = _mean_loss(loss_fn, val, validation_batch_size, min_batch_size)
            result.epochs += 1
            result.train_loss.append(total / n_fit)
            result.validation_loss.append(val_loss)
            if val_loss < result.best_validation_loss:
                result.best_validation_loss, result.best_epoch = val_loss, result.epochs
                best_state = copy.deepcopy(module.state_dict())
            elif result.epochs - result.best_epoch >= patience:
                result.converged = True
                break
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
        module.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
