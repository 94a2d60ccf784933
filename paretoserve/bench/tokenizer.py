"""Counting prompt tokens: a GGUF model's own tokenizer (vocabulary only), or a documented approximation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    exact: bool

    def count(self, text: str) -> int: ...


class ApproxTokenizer:
    """About 4 characters of English per token: the usual rule of thumb for BPE and SentencePiece
    vocabularies. Used only to filter and describe text datasets when the served model's tokenizer
    is not at hand; each request's real count comes back in the server's `usage.prompt_tokens`."""

    exact = False
    CHARS_PER_TOKEN = 4.0

    def count(self, text: str) -> int:
        return max(1, math.ceil(len(text) / self.CHARS_PER_TOKEN))


class GgufTokenizer:
    """The tokenizer of a GGUF file, loaded without its weights (~0.5 s for a 262k vocabulary).

    Counts include the BOS token the model adds, as the server counts them."""

    exact = True

    def __init__(self, path: str | Path) -> None:
        import llama_cpp

        from paretoserve.engine.llama_runner import quiet_llama_logs

        self._llama = llama_cpp
        quiet_llama_logs()
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise ValueError(f"--tokenizer: llama.cpp could not read the vocabulary of {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.path = Path(path)

    def count(self, text: str) -> int:
        data = text.encode()
        capacity = len(data) + 8
        buf = (self._llama.llama_token * capacity)()
        n = self._llama.llama_tokenize(self._vocab, data, len(data), buf, capacity, True, True)
        return n if n >= 0 else -n  # a negative n is the size it needed: that is the count

    def close(self) -> None:
        if self._model:
            self._llama.llama_model_free(self._model)
            self._model = None
