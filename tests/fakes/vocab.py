"""A fake tokenizer for the text-stream tests: token id -> bytes."""

from __future__ import annotations


class Vocab:
    """A fake tokenizer: token id -> bytes, built from the pieces a test needs."""

    def __init__(self, *pieces: bytes | str) -> None:
        self.pieces = [p.encode() if isinstance(p, str) else p for p in pieces]

    def __call__(self, token: int) -> bytes:
        return self.pieces[token]
