"""A sync context manager over `start()` and `stop()`, for what runs engine processes (a model's replicas, every
model's)."""

from __future__ import annotations

from typing import Self


class StartStop:
    """`with x:` starts x and stops it on the way out; a start that fails part-way stops what it had started."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
