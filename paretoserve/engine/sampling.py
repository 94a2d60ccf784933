"""Per-request sampling parameters and the token sampler applied to one row of logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Below this temperature a request decodes greedily: logits / 1e-308 overflow to inf and the
# probabilities to NaN, and the limit of sampling as the temperature goes to 0 is argmax anyway
# (vLLM's threshold).
GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its tokens; the HTTP layer has already checked the ranges."""

    max_tokens: int = 16
    temperature: float = 1.0  # < GREEDY_BELOW = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    seed: int | None = None  # None or -1 = random
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0  # end-of-generation tokens are masked until this many were generated
    presence_penalty: float = 0.0  # subtracted from the logit of every token generated so far
    frequency_penalty: float = 0.0  # subtracted once per time a token was generated so far
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    generated: tuple[int, ...] = ()  # tokens generated before (a resumed stream's): the penalties count them

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def make_rng(self) -> np.random.Generator | None:
        """The request's own random stream, or None for greedy decoding."""
        if self.greedy:
            return None
        # -1 is how many clients say "random"; other negative seeds count as their 64-bit pattern.
        seed = None if self.seed is None or self.seed == -1 else self.seed % (1 << 64)
        return np.random.default_rng(seed)

    def make_adjust(self) -> LogitAdjust | None:
        """The request's logit_bias and penalties, or None when it uses neither (the common, free case)."""
        if not self.logit_bias and not self.presence_penalty and not self.frequency_penalty:
            return None
        return LogitAdjust(self)


class LogitAdjust:
    """logit_bias and OpenAI's presence / frequency penalties over the tokens generated so far.

    The generated tokens are counted as they come (one dict lookup per token), so a step costs
    two vectorised numpy updates over the distinct tokens, not a pass over the whole output.
    """

    def __init__(self, params: SamplingParams) -> None:
        self.bias_ids = np.fromiter(params.logit_bias.keys(), dtype=np.int64, count=len(params.logit_bias))
        self.bias_values = np.fromiter(params.logit_bias.values(), dtype=np.float32, count=len(params.logit_bias))
        self.presence = np.float32(params.presence_penalty)
        self.frequency = np.float32(params.frequency_penalty)
        self.penalised = bool(params.presence_penalty or params.frequency_penalty)
        # Grown by doubling: a long request may repeat few tokens.
        size = max(min(params.max_tokens + len(params.generated), 256), 1)
        self.ids = np.empty(size, dtype=np.int64)  # distinct generated tokens, first seen first
        self.counts = np.zeros(size, dtype=np.float32)
        self._index: dict[int, int] = {}
        for token in params.generated if self.penalised else ():
            self.record(token)

    def apply(self, logits: np.ndarray) -> None:
        """Adjust one logits row in place."""
        if self.bias_ids.size:
            logits[self.bias_ids] += self.bias_values
        n = len(self._index)
        if self.penalised and n:
            counts = self.counts[:n]
            logits[self.ids[:n]] -= self.frequency * counts + self.presence

    def record(self, token: int) -> None:
        """Count a token the request generated."""
        i = self._index.get(token)
        if i is None:
            i = self._index[token] = len(self._index)
            if i == self.ids.size:
                self.ids = np.concatenate([self.ids, np.empty_like(self.ids)])
                self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
            self.ids[i] = token
        self.counts[i] += 1


@dataclass
class Sampler:
    """Samples one token from a logits row; `eog_ids` are the model's end-of-generation tokens."""

    eog_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def sample(self, logits: np.ndarray, params: SamplingParams, rng: np.random.Generator | None,
               n_generated: int, adjust: LogitAdjust | None = None) -> int:
        """Pick the next token id; `logits` is modified in place (it is the engine's scratch buffer)."""
        if adjust is not None:
            adjust.apply(logits)
        if params.ignore_eos or n_generated < params.min_tokens:
            logits[self.eog_ids] = -np.inf
        if rng is None or params.greedy:
            token = int(np.argmax(logits))
        else:
            token = sample_stochastic(logits, params, rng)
        if adjust is not None:
            adjust.record(token)
        return token


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
