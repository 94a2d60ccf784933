"""Numpy classifiers with hand-written gradients: softmax regression and a one-hidden-layer ReLU MLP.

Parameters are a dict of arrays (what travels in Flower's ArrayRecord). Both models end in a linear layer
`z = h W + b` with a softmax cross-entropy, so the last layer's per-sample gradient is `[p - y, h (x) (p - y)]`
in closed form; `proxy_factors` hands the coreset code its pieces instead of the (n, C + H*C) matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Model:
    """`hidden` = 0: softmax regression (logistic regression over C classes); > 0: MLP with that many ReLUs."""

    num_features: int
    num_classes: int
    hidden: int = 0

    @property
    def name(self) -> str:
        return f"mlp{self.hidden}" if self.hidden else "softmax"

    def init(self, seed: int) -> Params:
        """Softmax regression starts at zero; the MLP's first layer is He-initialised, seeded."""
        d, c, h = self.num_features, self.num_classes, self.hidden
        if not h:
            return {"w": np.zeros((d, c)), "b": np.zeros(c)}
        rng = np.random.RandomState(seed)
        return {"w1": rng.normal(0, np.sqrt(2.0 / d), (d, h)), "b1": np.zeros(h),
                "w2": rng.normal(0, np.sqrt(1.0 / h), (h, c)), "b2": np.zeros(c)}

    def last_input(self, params: Params, x: np.ndarray) -> np.ndarray:
        """h: what the last linear layer sees (the features themselves for softmax regression)."""
        if not self.hidden:
            return x
        return np.maximum(x @ params["w1"] + params["b1"], 0.0)

    def logits(self, params: Params, x: np.ndarray) -> np.ndarray:
        if not self.hidden:
            return x @ params["w"] + params["b"]
        return self.last_input(params, x) @ params["w2"] + params["b2"]

    def loss_and_grad(self, params: Params, x: np.ndarray, y: np.ndarray,
                      weights: np.ndarray | None = None) -> tuple[float, Params]:
        """Weighted mean cross-entropy `sum(w * l) / sum(w)` (plain mean when `weights` is None) and its gradient."""
        p = softmax(self.logits(params, x))
        scale = np.full(len(y), 1.0 / len(y)) if weights is None else weights / weights.sum()
        loss = float(-(scale * np.log(p[np.arange(len(y)), y] + 1e-300)).sum())
        return loss, self.gradient(params, x, y, scale[:, None])

    def gradient(self, params: Params, x: np.ndarray, y: np.ndarray, scale: float | np.ndarray) -> Params:
        """Gradient of `sum(scale * l)`: `scale` is 1/n for a plain mean or the (n, 1) column w / sum(w).
        Written for speed: SGD at batch 8 spends its time in numpy call overhead, not arithmetic."""
        w_out, b_out = ("w2", "b2") if self.hidden else ("w", "b")
        h = self.last_input(params, x)
        g = h @ params[w_out]
        g += params[b_out]
        g -= g.max(axis=1, keepdims=True)
        np.exp(g, out=g)
        g /= g.sum(axis=1, keepdims=True)
        g[np.arange(len(y)), y] -= 1.0
        g *= scale
        grads = {w_out: h.T @ g, b_out: g.sum(axis=0)}
        if self.hidden:
            dh = g @ params["w2"].T
            dh[h <= 0.0] = 0.0
            grads["w1"] = x.T @ dh
            grads["b1"] = dh.sum(axis=0)
        return grads

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on a set."""
        p = softmax(self.logits(params, x))
        loss = float(-np.log(p[np.arange(len(y)), y] + 1e-300).mean())
        return loss, float((p.argmax(axis=1) == y).mean())

    def proxy_factors(self, params: Params, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Factors (float32) whose row-wise Kronecker product is each sample's gradient proxy.

        Softmax regression: [x], the features (as the authors' code does). MLP: [p - y, [1, h]], whose
        Kronecker product is the last layer's (bias, weight) gradient `[p - y, h (x) (p - y)]` up to the
        order of its entries, so distances are the same. In float32, as the distances that use them: a
        quarter of the float64 pass's time (with its page faults) on a 5,000-sample client."""
        x32 = np.asarray(x, dtype=np.float32)
        if not self.hidden:
            return [x32]
        n = len(y)
        h1 = np.empty((n, self.hidden + 1), dtype=np.float32)  # [1, h], h written in place
        h1[:, 0] = 1.0
        h = h1[:, 1:]
        np.matmul(x32, params["w1"].astype(np.float32), out=h)
        h += params["b1"]  # (in place: stays float32)
        np.maximum(h, 0.0, out=h)
        e = h @ params["w2"].astype(np.float32)
        e += params["b2"]
        e -= e.max(axis=1, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=1, keepdims=True)
        e[np.arange(n), y] -= 1.0
        return [e, h1]

    def last_layer_gradients(self, params: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The explicit (n, C + H*C) proxy `[p - y, h (x) (p - y)]` (for checks; the coreset uses the factors)."""
        h = self.last_input(params, x)
        w_out, b_out = ("w2", "b2") if self.hidden else ("w", "b")
        e = softmax(h @ params[w_out] + params[b_out])
        e[np.arange(len(y)), y] -= 1.0
        return np.hstack([e, (h[:, :, None] * e[:, None, :]).reshape(len(y), -1)])
