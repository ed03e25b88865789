"""MADE: a masked MLP whose output for feature i depends only on features before i."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MADE", "split_params"]


def split_params(h: Tensor, features: int, shapes: Sequence[int]) -> tuple[Tensor, ...]:
    """Split a flat ``(N, D * sum(shapes))`` output, laid out group by group, into
    ``(N, D, s)`` views, one per group ``s`` of ``shapes``.
    """
    sizes = [features * s for s in shapes]
    return tuple(
        g.unflatten(-1, (features, s)) for g, s in zip(h.split(sizes, -1), shapes, strict=True)
    )


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al., 2015).

    Maps ``x`` ``(N, D)`` and a context ``c`` ``(N, C)`` to groups of parameters, one
    ``(N, D, s)`` tensor per entry ``s`` of ``shapes``, where the parameters of the
    feature at position :math:`r` of ``order`` depend on :math:`c` and the features at
    positions :math:`< r` only. The output layer is laid out group by group so each
    group is a view with a contiguous last dimension.

    Hidden unit :math:`h` has a degree :math:`m(h) \in \{0, \dots, D - 1\}` and sees the
    features at positions :math:`< m(h)`; the outputs of position :math:`r` see units of
    degree :math:`\le r`. Degrees are sorted (``m(h) = h D // H``), so the units that
    position :math:`r` needs form a prefix of every layer: :meth:`autoregress` computes
    pass :math:`r` on those prefixes only and updates the first layer's pre-activations
    by a rank-one term per new feature, instead of re-running the whole network.

    Arguments:
        features: Number of autoregressive features :math:`D`.
        context: Number of context features :math:`C` (seen by every hidden unit).
        shapes: Sizes of the parameter groups of each feature (:math:`P` = their sum).
        hidden_features: Widths of the hidden layers.
        activation: Activation module class.
        order: The autoregressive order, a permutation of ``range(D)`` (default: natural).

    Example:
        >>> made = MADE(3, 2, shapes=(1, 4))
        >>> [p.shape for p in made(torch.randn(5, 3), torch.randn(5, 2))]
        [torch.Size([5, 3, 1]), torch.Size([5, 3, 4])]
    """

    def __init__(
        self,
        features: int,
        context: int = 0,
        shapes: Sequence[int] = (1, 1),
        hidden_features: Sequence[int] = (50, 50),
        activation: type[nn.Module] = nn.ReLU,
        order: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not hidden_features:
            raise ValueError("MADE needs at least one hidden layer")
        self.features, self.context = features, context
        self.shapes, self.params = tuple(shapes), sum(shapes)
        self.activation: Callable[[Tensor], Tensor] = activation()
        try:  # in place on fresh matmul outputs (autograd-safe: addmm keeps no output)
            self.activation_: Callable[[Tensor], Tensor] = activation(inplace=True)
        except TypeError:
            self.activation_ = self.activation

        D = features
        order = torch.arange(D) if order is None else torch.as_tensor(order, dtype=torch.long)
        if sorted(order.tolist()) != list(range(D)):
            raise ValueError(f"order must be a permutation of range({D}), got {order.tolist()}")
        rank = torch.argsort(order)  # position of each feature in the order
        self.register_buffer("order", order)
        self.register_buffer("rank", rank)
        # feature j is usable by units of degree > rank[j]; the context, last, by every unit
        degrees = [torch.cat((rank + 1, torch.zeros(context, dtype=torch.long)))]
        degrees += [torch.arange(h) * D // h for h in hidden_features]
        degrees += [torch.cat([rank.repeat_interleave(s) for s in shapes])]
        widths = [D + context, *hidden_features, D * self.params]
        # output rows reordered position by position: the rows of position r are a slice
        self.register_buffer("by_feature", torch.argsort(degrees[-1], stable=True))

        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layer = nn.Linear(a, b)
            self.weights.append(layer.weight)
            self.biases.append(layer.bias)
            mask = degrees[i + 1][:, None] >= degrees[i][None, :]
            self.register_buffer(f"mask{i}", mask.to(layer.weight.dtype))
        # prefix[l][i]: number of units of hidden layer l with degree <= i
        prefix = [[int((d <= i).sum()) for i in range(D)] for d in degrees[1:-1]]
        self.prefix = prefix

    def masked_weights(self) -> list[Tensor]:
        """The weights with their masks applied, one per layer."""
        return [w * getattr(self, f"mask{i}") for i, w in enumerate(self.weights)]

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Parameter groups ``(N, D, s)`` from ``x`` ``(N, D)`` and context ``(N, C)``."""
        ws = self.masked_weights()
        bs = list(self.biases)
        if self.context > 0:
            x = torch.cat((x, c), dim=-1)
        h = torch.addmm(bs[0], x, ws[0].t())
        for w, b in zip(ws[1:], bs[1:], strict=True):
            h = torch.addmm(b, self.activation_(h), w.t())
        return split_params(h, self.features, self.shapes)

    def autoregress(
        self, step: Callable[[int, tuple[Tensor, ...]], Tensor], c: Tensor | None, n: int
    ) -> Tensor:
        """Generate ``x`` ``(n, D)`` feature by feature, in ``order``: one prefix pass each.

        Arguments:
            step: ``step(j, params)`` gets the groups ``(n, s)`` of feature ``j``
                (computed from the features already generated) and returns ``x_j`` ``(n,)``.
            c: Context ``(n, C)`` or ``None``.
            n: Number of rows.

        Returns:
            The generated ``x``, shape ``(n, D)``.
        """
        ws = self.masked_weights()
        bs = list(self.biases)
        P = self.params
        w_out, b_out = ws[-1][self.by_feature], bs[-1][self.by_feature]
        b0 = self.biases[0]
        if self.context > 0:
            pre = torch.addmm(b0, c, ws[0][:, self.features :].t())
        else:
            pre = b0.expand(n, -1).clone()
        cols = []
        for i, j in enumerate(self.order.tolist()):
            k = [p[i] for p in self.prefix]
            h = self.activation(pre[:, : k[0]])
            for layer in range(1, len(k)):
                w = ws[layer][: k[layer], : k[layer - 1]]
                h = self.activation_(torch.addmm(bs[layer][: k[layer]], h, w.t()))
            rows = slice(i * P, (i + 1) * P)
            params = F.linear(h, w_out[rows, : k[-1]], b_out[rows])
            xj = step(j, params.split(self.shapes, dim=-1))
            cols.append(xj)
            if i + 1 < self.features:  # units of degree > i now see x_j
                pre[:, k[0] :].addr_(xj, ws[0][k[0] :, j])
        return torch.stack(cols, dim=-1)[:, self.rank]
