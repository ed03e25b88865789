"""Classifier two-sample test (C2ST): cross-validated accuracy of an MLP telling two sets apart.

The classifier learns to tell samples of ``x`` (label 0) from samples of ``y`` (label 1);
its held-out accuracy is 0.5 when the two distributions are equal and approaches the
Bayes accuracy ``1/2 + TV(p, q)/2`` when the classifier is good. Both sets are ``(N, D)``
and ``(M, D)``. Two recipes share the network: z-score both sets with the first set's mean
and standard deviation, an MLP with two hidden layers of ``10 D`` ReLU units trained with
Adam on the binary cross-entropy, 5-fold cross-validation, mean held-out accuracy over the
folds.

- ``recipe="sbibench"`` (the default, method ``"c2st-mlp"``): stratified folds (each holds
  out a fifth of either set), Glorot-uniform weights, no weight penalty, and a validation
  tenth of each training fold whose best weights each model keeps. From 1,000 samples per
  set: zero biases, minibatches of 256 at Adam's learning rate 5e-3; once every fold model's
  validation loss has gone 5 epochs without improving by 1e-4, the learning rate drops
  tenfold and the count starts again; the next such stall ends training (at most 1,000
  epochs). Below 1,000 samples per set every model trains exactly 500 Adam steps in
  minibatches of 256 at learning rate 1e-3, whatever ``max_epochs``, with Glorot-uniform
  biases too; a call then costs about 0.5-1 s whatever n.
- ``recipe="sbibm"`` (method ``"c2st-sbibm"``): the recipe behind sbibm's published numbers
  (sbibm 1.1.0 ``sbibm/metrics/c2st.py``), which runs scikit-learn's
  ``MLPClassifier(hidden_layer_sizes=(10 D, 10 D), max_iter=10000, solver="adam")``
  in a shuffled plain ``KFold``: Glorot-uniform weights and biases, an L2 penalty of 1e-4
  on the weights, minibatches of 200, training to convergence of the training loss (no
  improvement by 1e-4 for more than 10 epochs, at most 10,000 epochs), the last weights.
  Written here in torch; `tests/metrics/test_c2st.py` checks it against scikit-learn
  itself. It trains for hundreds of epochs: about a minute at 10,000 vs 10,000 in 10-D
  (`benchmarks/c2st_sbibm_speed.py`), the fold models that have stopped no longer trained.

Both train the models of all folds (and of all label permutations, for the permutation null)
at once as one batched network (stacked weights, :func:`torch.baddbmm`). How the default
recipe was chosen, and its power against sbibm's at each sample size, are measured in the
documentation's page on scores.

References:
    Lopez-Paz & Oquab (2017), Revisiting classifier two-sample tests, ICLR.
    Lueckmann et al. (2021), Benchmarking simulation-based inference, AISTATS.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from sbibench.metrics.score import Estimate, check_pair

__all__ = ["RECIPES", "c2st"]

_NULLS = (None, "binomial", "permutation")
RECIPES = ("sbibench", "sbibm")
# Below _SMALL samples per set the default recipe trains at least _MIN_STEPS Adam steps and
# draws its biases Glorot-uniform too (see the module docstring); at and above it, untouched.
_SMALL = 1000
_MIN_STEPS = 500
_SMALL_LEARNING_RATE = 1e-3  # the floor's learning rate (that of the recipe before the decay)
_DECAY = 0.1  # from 1,000 up: the learning rate's factor when every model has stalled


def c2st(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    seed: int = 0,
    folds: int = 5,
    null: str | None = None,
    num_permutations: int = 20,
    max_epochs: int = 1000,
    patience: int = 5,
    batch_size: int = 256,
    learning_rate: float = 5e-3,
    num_threads: int | None = 1,
    recipe: str = "sbibench",
) -> Estimate:
    """Classifier two-sample test accuracy between two sample sets.

    Unequal sizes: the larger set is subsampled (without replacement, seeded) to the size
    of the smaller one, so that classes are balanced, chance is exactly 0.5 and the
    accuracy is the balanced accuracy. Folds are stratified (each holds out ``1/folds`` of
    either set). A feature that is constant in ``x`` is centred but not scaled (its
    standard deviation is taken as 1), so it never produces NaN.

    Arguments:
        x: Samples of the first distribution (e.g. the reference posterior), shape (N, D).
            Its mean and standard deviation z-score both sets.
        y: Samples of the second distribution (e.g. the method's posterior), shape (M, D).
        seed: Seed of a local generator for subsampling, folds, initialisation and batches.
        folds: Number of cross-validation folds, at least 2.
        null: Optional reference distribution of the accuracy under equal distributions,
            reported in ``details`` as ``null_mean``, ``null_std`` and ``p_value``
            (one-sided, large accuracy is evidence against equality):
            ``"binomial"`` treats the ``2 min(N, M)`` held-out predictions as fair coin
            flips (mean 0.5, std ``0.5 / sqrt(2 min(N, M))``; free, slightly optimistic
            since predictions within a fold share a classifier); ``"permutation"``
            retrains on ``num_permutations`` random relabellings of the pooled samples
            (exact up to Monte Carlo error; costs ``num_permutations`` times the training).
        num_permutations: Number of relabellings for ``null="permutation"``.
        max_epochs: Upper bound on training epochs from 1,000 samples per set; below, a
            model trains exactly 500 Adam steps (the floor), whatever ``max_epochs``.
        patience: Epochs without improvement of every fold model's validation loss
            before the learning rate drops tenfold, and again before training stops (from
            1,000 samples per set; below, the 500-step floor alone decides).
        batch_size: Minibatch size per model.
        learning_rate: Adam's initial learning rate, from 1,000 samples per set (below,
            1e-3).
        recipe: ``"sbibench"`` or ``"sbibm"`` (see the module docstring); ``max_epochs``,
            ``patience``, ``batch_size`` and ``learning_rate`` shape the first only.
        num_threads: Torch intra-op threads while training (the global setting is restored
            afterwards); ``None`` keeps the current setting. The network is small, so one
            thread is about as fast as two on an idle machine, and on a busy one extra
            threads waiting at each of the thousands of small steps made a call 10-30x
            slower (measured on a shared 2-core machine).

    Returns:
        An :class:`~sbibench.metrics.Estimate` with the mean held-out accuracy in [0, 1] and
        method ``"c2st-mlp"`` (``"c2st-sbibm"`` for sbibm's recipe); ``details`` holds ``num_samples`` (per set, after
        subsampling), ``folds``, ``epochs`` (of the longest-running fold model),
        ``fold_std`` (the sd of the fold accuracies), ``noise_std`` (the accuracy's noise
        sd with the classifier's training: the larger of the binomial sd and Nadeau and
        Bengio's corrected ``fold_std * sqrt(1 / folds + 1 / (folds - 1))``) and the null's
        fields when requested.

    Raises:
        ValueError: On NaN/inf, mismatched dimensions, fewer samples than folds in either
            set, or an unknown ``null``.

    References:
        Lopez-Paz & Oquab (2017), Revisiting classifier two-sample tests, ICLR.
        Lueckmann et al. (2021), Benchmarking simulation-based inference, AISTATS.
        Nadeau & Bengio (2003), Inference for the generalization error, Machine Learning 52.

    Example:
        >>> x, y = torch.randn(500, 2), torch.randn(500, 2) + 3.0
        >>> c2st(x, y, seed=0).value > 0.9
        True
    """
    x, y = check_pair(x, y, ("x", "y"))
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if len(x) < folds or len(y) < folds:
        raise ValueError(
            f"x and y need at least folds={folds} samples each, got {len(x)} and {len(y)}"
        )
    if null not in _NULLS:
        raise ValueError(f"null must be one of {_NULLS}, got {null!r}")
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if recipe == "sbibm" and null == "permutation":
        raise ValueError("recipe='sbibm' takes null=None or 'binomial', not 'permutation'")
    if null == "permutation" and num_permutations < 1:
        raise ValueError(f"num_permutations must be >= 1, got {num_permutations}")
    for name, value in (("max_epochs", max_epochs), ("patience", patience)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
    if batch_size < 1 or not learning_rate > 0:
        raise ValueError(
            f"need batch_size >= 1 and learning_rate > 0, got {batch_size}, {learning_rate}"
        )

    generator = torch.Generator().manual_seed(seed)
    n = min(len(x), len(y))
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 1e-12 * (1.0 + mean.abs()), std, torch.ones_like(std))
    x = x[torch.randperm(len(x), generator=generator)[:n]] if len(x) > n else x
    y = y[torch.randperm(len(y), generator=generator)[:n]] if len(y) > n else y
    data = ((torch.cat([x, y]) - mean) / std).to(torch.float32)
    if recipe == "sbibm":
        threads = torch.get_num_threads()
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            fold_acc, right, epochs = _sbibm_cross_validate(data, folds, generator)
        finally:
            torch.set_num_threads(threads)
        value = float(fold_acc.mean())
        details = {"num_samples": n, "folds": folds, "epochs": epochs, **_noise(fold_acc, 2 * n)}
        if null == "binomial":
            details.update(_binomial_null(right, 2 * n))
        return Estimate(value, "c2st-sbibm", details)

    train = functools.partial(
        _cross_validate,
        data,
        folds=folds,
        generator=generator,
        max_epochs=max_epochs,
        patience=patience,
        batch_size=batch_size,
        learning_rate=learning_rate,
        num_threads=num_threads,
    )
    fold_acc, correct, epochs = train(torch.arange(2 * n)[None])
    details: dict[str, float | int | str] = {
        "num_samples": n,
        "folds": folds,
        "epochs": epochs,
        **_noise(fold_acc[0], 2 * n),
    }
    value = float(fold_acc[0].mean())
    if null == "binomial":
        details.update(_binomial_null(int(correct[0]), 2 * n))
    elif null == "permutation":
        perms = torch.stack(
            [torch.randperm(2 * n, generator=generator) for _ in range(num_permutations)]
        )
        null_acc = train(perms)[0].mean(1)
        details.update(
            null="permutation",
            num_permutations=num_permutations,
            null_mean=float(null_acc.mean()),
            null_std=float(null_acc.std()) if num_permutations > 1 else float("nan"),
            p_value=float((1 + (null_acc >= value).sum()) / (num_permutations + 1)),
        )
    return Estimate(value, "c2st-mlp", details)


def _noise(fold_acc: Tensor, total: int) -> dict[str, float]:
    """The accuracy's noise sd, the classifier's training included, from its k = ``folds``
    fold accuracies (k,) over ``total`` held-out predictions.

    The accuracy is the mean of the fold accuracies. Each differs from the others by its own
    test points' binomial noise *and* its own model's training (initialisation, minibatch
    order, training rows), so their spread holds both, and no binomial term is added to it (a
    variance sum would count the test points' noise twice). But the folds are not independent:
    any two models share (k - 2) / (k - 1) of their training rows, and in the default recipe
    from 1,000 per set they stop at one shared epoch, so a mean of k of them varies more than
    ``fold_std / sqrt(k)``. The sd is therefore Nadeau and Bengio's (2003) corrected one,
    ``fold_std * sqrt(1 / k + 1 / (k - 1))`` (1.5 times the plain standard error at k = 5; their
    correlation term is the test share over the training share). It is conservative where the
    folds vary independently and covered the spread over classifier seeds where they do not
    (the documentation's page on scores, "The noise of a C2ST"). From five folds it is rough
    (four degrees of freedom: it falls below half its value about one time in ten), and the
    binomial sd ``0.5 / sqrt(total)`` is a floor the accuracy's noise never goes below (the
    held-out points alone give it, at accuracy 1/2 and within a factor of 0.6 of it up to
    accuracy 0.9), so the recorded noise is the larger of the two.
    """
    fold_std = float(fold_acc.std())  # folds >= 2: checked by c2st
    k = len(fold_acc)
    corrected = fold_std * math.sqrt(1 / k + 1 / (k - 1))
    return {"fold_std": fold_std, "noise_std": max(0.5 / math.sqrt(total), corrected)}


def _binomial_null(correct: int, total: int) -> dict[str, float | str]:
    """The null of ``total`` held-out predictions as fair coin flips, given ``correct`` hits."""
    from scipy.stats import binom

    return {
        "null": "binomial",
        "null_mean": 0.5,
        "null_std": 0.5 / math.sqrt(total),
        "p_value": float(binom.sf(correct - 1, total, 0.5)),
    }


def _cross_validate(
    data: Tensor,
    orders: Tensor,
    folds: int,
    generator: torch.Generator,
    max_epochs: int,
    patience: int,
    batch_size: int,
    learning_rate: float,
    num_threads: int | None,
) -> tuple[Tensor, Tensor, int]:
    """Stratified k-fold accuracies for R labellings at once.

    ``data`` is (2n, D); each row of ``orders`` (R, 2n) is a permutation of the rows whose
    first n entries carry label 0 and last n label 1. Returns the fold accuracies
    (R, folds), the number of correct held-out predictions (R,) and the epochs trained.
    """
    num_labellings, two_n = orders.shape
    n = two_n // 2
    train_idx, train_lab, tests = [], [], []
    size = 2 * (n - math.ceil(n / folds))  # the smallest training fold; others are cut to it
    for order in orders:
        xs = order[:n][torch.randperm(n, generator=generator)]
        ys = order[n:][torch.randperm(n, generator=generator)]
        x_chunks, y_chunks = torch.tensor_split(xs, folds), torch.tensor_split(ys, folds)
        for k in range(folds):
            rest_x = torch.cat([c for j, c in enumerate(x_chunks) if j != k])
            rest_y = torch.cat([c for j, c in enumerate(y_chunks) if j != k])
            idx = torch.cat([rest_x, rest_y])
            lab = torch.cat([torch.zeros(len(rest_x)), torch.ones(len(rest_y))])
            keep = torch.randperm(len(idx), generator=generator)[:size]
            train_idx.append(idx[keep])
            train_lab.append(lab[keep])
            tests.append((x_chunks[k], y_chunks[k]))
    train_idx, train_lab = torch.stack(train_idx), torch.stack(train_lab)

    num_val = min(max(1, round(0.1 * size)), size - 1)
    small = n < _SMALL
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        weights, epochs = _train(
            data,
            train_idx[:, num_val:],
            train_lab[:, num_val:],
            train_idx[:, :num_val],
            train_lab[:, :num_val],
            generator,
            0 if small else max_epochs,  # small: exactly the floor's epochs
            patience,
            batch_size,
            _SMALL_LEARNING_RATE if small else learning_rate,
            min_steps=_MIN_STEPS if small else 0,
            random_biases=small,
            decays=0 if small else 1,
        )
    finally:
        torch.set_num_threads(threads)
    fold_acc = torch.empty(len(tests), dtype=torch.float64)
    correct = torch.zeros(len(tests))
    with torch.no_grad():
        for m, (tx, ty) in enumerate(tests):
            logits = _forward([w[m : m + 1] for w in weights], data[torch.cat([tx, ty])][None])[0]
            right = torch.cat([logits[: len(tx)] <= 0, logits[len(tx) :] > 0])
            fold_acc[m] = right.double().mean()
            correct[m] = right.sum()
    fold_acc = fold_acc.view(num_labellings, folds)
    correct = correct.view(num_labellings, folds)
    return fold_acc, correct.sum(1), epochs


def _forward(weights: list[Tensor], inputs: Tensor) -> Tensor:
    """Batched MLP: inputs (M, B, D) through M independent networks to logits (M, B)."""
    w1, b1, w2, b2, w3, b3 = weights
    hidden = torch.baddbmm(b1, inputs, w1).relu()
    hidden = torch.baddbmm(b2, hidden, w2).relu()
    return torch.baddbmm(b3, hidden, w3).squeeze(-1)


def _gradients(weights: list[Tensor], inputs: Tensor, labels: Tensor) -> Tensor:
    """Backpropagation of the summed mean binary cross-entropy of M networks, by hand, into
    each weight's ``.grad``: inputs (M, B, D), labels (M, B); returns each network's mean
    binary cross-entropy (M,).

    The same arithmetic autograd does, without its graph: the networks are small and the
    steps many, so its bookkeeping was most of a step in 1-2 dimensions (0.77 -> 0.48 ms a
    step at D = 1, 1.0 -> 0.55 ms at D = 2; equal at D = 10, where the products dominate).
    `tests/metrics/test_c2st.py` checks it against autograd.
    """
    w1, b1, w2, b2, w3, b3 = weights
    g1, gb1, g2, gb2, g3, gb3 = (w.grad for w in weights)
    z1 = torch.baddbmm(b1, inputs, w1)
    h1 = z1.relu()
    z2 = torch.baddbmm(b2, h1, w2)
    h2 = z2.relu()
    logits = torch.baddbmm(b3, h2, w3)
    # d/dlogit of softplus(logit) - label * logit, averaged over the batch
    d3 = (torch.sigmoid(logits) - labels.unsqueeze(-1)) / inputs.shape[1]
    torch.bmm(h2.transpose(1, 2), d3, out=g3)
    torch.sum(d3, 1, keepdim=True, out=gb3)
    d2 = _relu_backward(torch.bmm(d3, w3.transpose(1, 2)), z2)
    torch.bmm(h1.transpose(1, 2), d2, out=g2)
    torch.sum(d2, 1, keepdim=True, out=gb2)
    d1 = _relu_backward(torch.bmm(d2, w2.transpose(1, 2)), z1)
    torch.bmm(inputs.transpose(1, 2), d1, out=g1)
    torch.sum(d1, 1, keepdim=True, out=gb1)
    logits = logits.squeeze(-1)
    return (torch.nn.functional.softplus(logits) - labels * logits).mean(1)


def _relu_backward(grad: Tensor, pre: Tensor) -> Tensor:
    """``grad`` where the ReLU's input ``pre`` > 0, else 0: autograd's own ReLU backward, one
    pass. Multiplying by the mask ``pre > 0`` converted the booleans to floats first, 7x
    slower (270 against 35 us at (5, 200, 100)), a quarter of a step of sbibm's recipe."""
    return torch.ops.aten.threshold_backward(grad, pre, 0.0)


def _train(
    data: Tensor,
    train_idx: Tensor,
    train_lab: Tensor,
    val_idx: Tensor,
    val_lab: Tensor,
    generator: torch.Generator,
    max_epochs: int,
    patience: int,
    batch_size: int,
    learning_rate: float,
    min_steps: int = 0,
    random_biases: bool = False,
    decays: int = 0,
) -> tuple[list[Tensor], int]:
    """Train M = len(train_idx) MLPs at once; return each one's best weights and the epochs run.

    Adam scales every weight's step separately, so summing the M losses trains the M models
    exactly as if each had its own optimiser. No model stops before ``min_steps`` Adam steps
    (``max_epochs`` is raised to reach them); ``random_biases`` draws the biases
    Glorot-uniform like the weights instead of zero. Once every model's validation loss has
    stalled for ``patience`` epochs, the learning rate is multiplied by ``_DECAY`` and the
    patience counts start again, ``decays`` times; the next stall ends training (``decays=0``:
    plain early stopping). Every model keeps its best-validation weights throughout.
    """
    num_models, size = train_idx.shape
    dim = data.shape[1]
    hidden = 10 * dim
    weights = []
    for fan_in, fan_out in ((dim, hidden), (hidden, hidden), (hidden, 1)):
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot-uniform, as scikit-learn's MLP
        w = (2 * torch.rand(num_models, fan_in, fan_out, generator=generator) - 1) * bound
        if random_biases:
            b = (2 * torch.rand(num_models, 1, fan_out, generator=generator) - 1) * bound
        else:
            b = torch.zeros(num_models, 1, fan_out)
        weights += [w, b]
    for w in weights:  # gradients are written in place by `_gradients`, not by autograd
        w.grad = torch.zeros_like(w)
    best = [w.detach().clone() for w in weights]
    best_loss = torch.full((num_models,), math.inf)
    stale = torch.zeros(num_models, dtype=torch.long)
    # fused: one kernel for the whole update; the steps are small, so per-step overhead counts
    optimizer = torch.optim.Adam(weights, lr=learning_rate, fused=True)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    batch = min(batch_size, size)
    steps = size // batch
    val_inputs = data[val_idx]
    min_epochs = math.ceil(min_steps / steps)
    epochs = 0
    for _ in range(max(max_epochs, min_epochs)):
        epochs += 1
        order = torch.argsort(torch.rand(num_models, size, generator=generator), dim=1)
        inputs = data[train_idx.gather(1, order)]  # the epoch's shuffled inputs, gathered once
        lab = train_lab.gather(1, order)
        for s in range(steps):
            part = slice(s * batch, (s + 1) * batch)
            _gradients(weights, inputs[:, part], lab[:, part])
            optimizer.step()
        with torch.no_grad():
            val_loss = loss_fn(_forward(weights, val_inputs), val_lab).mean(1)
            improved = val_loss < best_loss - 1e-4
            best_loss = torch.where(improved, val_loss, best_loss)
            stale = torch.where(improved, 0, stale + 1)
            for b, w in zip(best, weights, strict=True):
                b[improved] = w[improved]
        if epochs >= min_epochs and bool((stale >= patience).all()):
            if decays == 0:
                break
            decays -= 1
            stale.zero_()
            for group in optimizer.param_groups:
                group["lr"] *= _DECAY
    return best, epochs


def _models_kept(
    weights: list[Tensor], optimizer: torch.optim.Adam, keep: Tensor
) -> tuple[list[Tensor], torch.optim.Adam]:
    """The weights of the models ``keep`` marks, and an Adam optimizer that carries their
    state on: stopped models no longer cost a step (in sbibm's recipe the fold models stop
    hundreds of epochs apart)."""
    kept = [w.detach()[keep].clone() for w in weights]
    carried = torch.optim.Adam(kept, lr=1e-3, fused=True)
    for old, new in zip(weights, kept, strict=True):
        new.grad = torch.zeros_like(new)
        state = optimizer.state[old]
        carried.state[new] = {
            "step": state["step"].clone(),
            "exp_avg": state["exp_avg"][keep].clone(),
            "exp_avg_sq": state["exp_avg_sq"][keep].clone(),
        }
    return kept, carried


# scikit-learn's MLPClassifier as sbibm's c2st configures it (sbibm/metrics/c2st.py, 1.1.0):
# hidden_layer_sizes=(10 D, 10 D), activation="relu", solver="adam", max_iter=10000; the rest
# are MLPClassifier's defaults.
_SBIBM_ALPHA = 1e-4  # L2 penalty on the weights (not the intercepts)
_SBIBM_BATCH = 200
_SBIBM_TOL = 1e-4
_SBIBM_NO_CHANGE = 10  # stop once the training loss has not improved by tol for 11 epochs
_SBIBM_MAX_EPOCHS = 10_000


def _sbibm_cross_validate(
    data: Tensor, folds: int, generator: torch.Generator
) -> tuple[Tensor, int, int]:
    """sbibm's recipe: plain shuffled k-fold (not stratified) over the 2n rows (the first n of
    label 0), an MLP per fold trained to convergence of its training loss, mean held-out
    accuracy over the folds.

    The fold models train together, as in `_train`. Plain k-fold training sets differ in
    size by at most one row; each is cut to the smallest (one row of 8,000 at n = 10,000).
    Each model keeps the weights of the epoch at which it stopped, as scikit-learn does.
    Returns the fold accuracies (folds,), the number of correct held-out predictions and the
    epochs of the longest-running model.
    """
    two_n, dim = data.shape
    n = two_n // 2
    labels = torch.cat([torch.zeros(n), torch.ones(n)])
    tests = torch.tensor_split(torch.randperm(two_n, generator=generator), folds)
    size = two_n - max(len(t) for t in tests)
    keep = torch.ones(two_n, dtype=torch.bool)
    train_idx = []
    for test in tests:
        keep[:] = True
        keep[test] = False
        train_idx.append(keep.nonzero().squeeze(1)[:size])
    train_idx = torch.stack(train_idx)
    train_lab = labels[train_idx]
    num_models, hidden = folds, 10 * dim
    weights = []
    for fan_in, fan_out in ((dim, hidden), (hidden, hidden), (hidden, 1)):
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot-uniform, biases included
        for shape in ((fan_in, fan_out), (1, fan_out)):
            weights.append((2 * torch.rand(num_models, *shape, generator=generator) - 1) * bound)
    for w in weights:
        w.grad = torch.zeros_like(w)
    final = [w.clone() for w in weights]
    optimizer = torch.optim.Adam(weights, lr=1e-3, fused=True)
    batch = min(_SBIBM_BATCH, size)
    active = torch.arange(num_models)  # the fold models still training
    best_loss = torch.full((num_models,), math.inf)
    no_change = torch.zeros(num_models, dtype=torch.long)
    epochs = 0
    for _ in range(_SBIBM_MAX_EPOCHS):
        epochs += 1
        # Every fold's order is drawn, stopped or not: a model's minibatches do not depend on
        # when the others stopped (the same draws as training all to the end).
        order = torch.argsort(torch.rand(num_models, size, generator=generator), dim=1)[active]
        inputs = data[train_idx[active].gather(1, order)]
        lab = train_lab[active].gather(1, order)
        epoch_loss = torch.zeros(len(active), dtype=torch.float64)
        for start in range(0, size, batch):
            part = slice(start, min(start + batch, size))
            rows = part.stop - part.start
            loss = _gradients(weights, inputs[:, part], lab[:, part]).double()
            penalty = sum(w.square().sum((1, 2)) for w in weights[::2]).double()
            epoch_loss += (loss + 0.5 * _SBIBM_ALPHA * penalty / rows) * rows
            for w in weights[::2]:  # the L2 term's gradient, alpha W / rows
                w.grad.add_(w.detach(), alpha=_SBIBM_ALPHA / rows)
            optimizer.step()
        epoch_loss /= size
        no_change = torch.where(epoch_loss > best_loss - _SBIBM_TOL, no_change + 1, 0)
        best_loss = torch.minimum(best_loss, epoch_loss)
        stopping = no_change > _SBIBM_NO_CHANGE
        if stopping.any():  # keep their weights; train only the others from here on
            for f, w in zip(final, weights, strict=True):
                f[active[stopping]] = w.detach()[stopping]
            keep = ~stopping
            active, best_loss, no_change = active[keep], best_loss[keep], no_change[keep]
            if not len(active):
                break
            weights, optimizer = _models_kept(weights, optimizer, keep)
    if len(active):  # models that ran out of epochs (none left where the last ones stopped)
        for f, w in zip(final, weights, strict=True):
            f[active] = w.detach()
    accuracies, correct = [], 0
    with torch.no_grad():
        for m, test in enumerate(tests):
            logits = _forward([f[m : m + 1] for f in final], data[test][None])[0]
            right = (logits > 0).float() == labels[test]
            accuracies.append(right.double().mean())
            correct += int(right.sum())
    return torch.stack(accuracies), correct, epochs
