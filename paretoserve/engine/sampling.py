"""Per-request sampling parameters and the token sampler applied to one row of logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its tokens; the HTTP layer has already checked the ranges."""

    max_tokens: int = 16
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0  # end-of-generation tokens are masked until this many were generated

    def make_rng(self) -> np.random.Generator | None:
        """The request's own random stream, or None for greedy decoding."""
        return None if self.temperature == 0 else np.random.default_rng(self.seed)


@dataclass
class Sampler:
    """Samples one token from a logits row; `eog_ids` are the model's end-of-generation tokens."""

    eog_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def sample(self, logits: np.ndarray, params: SamplingParams, rng: np.random.Generator | None,
               n_generated: int) -> int:
        """Pick the next token id; `logits` is modified in place (it is the engine's scratch buffer)."""
        if params.ignore_eos or n_generated < params.min_tokens:
            logits[self.eog_ids] = -np.inf
        if rng is None:
            return int(np.argmax(logits))
        return sample_stochastic(logits, params, rng)


def sample_stochastic(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Temperature, then top-k, then top-p (nucleus) over the survivors, as vLLM orders them."""
    candidates: np.ndarray | None = None
    values = logits
    if 0 < params.top_k < logits.shape[0]:
        candidates = np.argpartition(logits, -params.top_k)[-params.top_k:]
        values = logits[candidates]
    scaled = values.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
        candidates = keep if candidates is None else candidates[keep]
        probs = probs[keep] / probs[keep].sum()
    index = min(int(np.searchsorted(np.cumsum(probs), rng.random(), side="right")), probs.shape[0] - 1)
    return int(index if candidates is None else candidates[index])
