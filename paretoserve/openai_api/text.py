"""Tokens to text as they arrive: incremental UTF-8 decoding and stop strings."""

from __future__ import annotations

import codecs
from typing import Callable


class TextStream:
    """Turns a request's tokens into text deltas and spots its stop strings.

    Text that could be the start of a stop string is held back until it is clear either way, so
    a stop string never reaches the client. Stop strings count only once `min_tokens` tokens
    were generated, as in vLLM.
    """

    def __init__(self, piece: Callable[[int], bytes], stop: tuple[str, ...] = (), min_tokens: int = 0) -> None:
        self._piece = piece
        self._stop = stop
        self._longest_stop = max((len(s) for s in stop), default=0)
        self._min_tokens = min_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = ""
        self.n_tokens = 0
        self.stopped = False  # a stop string was found: the request should end

    def push(self, tokens: tuple[int, ...] | list[int]) -> str:
        """Add generated tokens; returns the text that can be sent now."""
        if self.stopped:
            return ""
        new = "".join(self._decoder.decode(self._piece(t)) for t in tokens)
        self.n_tokens += len(tokens)
        text = self._held + new
        if not self._stop:
            self._held = ""
            return text
        if self.n_tokens >= self._min_tokens:
            cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                self._held = ""
                return text[:cut]
        keep = self._partial_stop_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        """Whatever was held back, once the request has ended without a stop string."""
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return text

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest end of `text` that begins some stop string."""
        for k in range(min(len(text), self._longest_stop - 1), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self._stop):
                return k
        return 0
