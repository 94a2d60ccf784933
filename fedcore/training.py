"""Local SGD: mini-batches over a (possibly weighted) set, with FedProx's proximal term when mu > 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcore.models import Model, Params


@dataclass(frozen=True)
class SGD:
    lr: float
    batch_size: int
    mu: float = 0.0  # FedProx's proximal weight: grad += mu * (theta - anchor)


def train_epochs(model: Model, params: Params, x: np.ndarray, y: np.ndarray, epochs: int, sgd: SGD,
                 rng: np.random.RandomState, weights: np.ndarray | None = None,
                 anchor: Params | None = None, max_samples: int | None = None) -> tuple[Params, int]:
    """`epochs` shuffled passes of plain SGD over (x, y[, weights]); each batch's loss is
    `sum(w * l) / sum(w)`. Stops once `max_samples` samples are processed (the last batch cut to fit).
    Returns the new parameters and the number of samples processed."""
    params = {k: v.copy() for k, v in params.items()}
    n = len(y)
    budget = epochs * n if max_samples is None else min(epochs * n, max(0, max_samples))
    done = 0
    for _ in range(epochs):
        if done >= budget:
            break
        order = rng.permutation(n)
        xs, ys = x[order], y[order]
        ws = None if weights is None else weights[order]
        for start in range(0, n, sgd.batch_size):
            stop = min(start + sgd.batch_size, start + budget - done)
            if stop <= start:
                break
            done += len(ys[start:stop])
            if ws is None:
                scale = 1.0 / len(ys[start:stop])
            else:
                scale = ws[start:stop, None] / ws[start:stop].sum()
            grads = model.gradient(params, xs[start:stop], ys[start:stop], scale)
            for key, grad in grads.items():
                if sgd.mu and anchor is not None:
                    grad += sgd.mu * (params[key] - anchor[key])
                grad *= sgd.lr
                params[key] -= grad
    return params, done
