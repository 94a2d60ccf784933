"""What a search generator has measured so far: the latest figures of each value it asked for, the order of first
asks, and the extra runs it spent measuring a value again (both the BCA search and the capacity search keep one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator, Generic, TypeVar

K = TypeVar("K")  # what is asked for: a batch cap, a request rate
V = TypeVar("V")  # what comes back: a measured point, a rate's pooled run
R = TypeVar("R")  # what the search ends with


@dataclass
class Asked(Generic[K, V]):
    """A search yields (value, extra runs it must now have) and receives the measured figures through send()."""

    latest: dict[K, V] = field(default_factory=dict)
    order: list[K] = field(default_factory=list)  # first asks, in order
    extra: dict[K, int] = field(default_factory=dict)  # runs beyond the first, by value
    remeasured: list[str] = field(default_factory=list)  # each value measured again, and why

    @property
    def spent(self) -> int:
        """Extra runs spent so far."""
        return sum(self.extra.values())

    def measure(self, value: K) -> Generator[tuple[K, int], V, V]:
        """The value's figures, asked for unless it was measured already."""
        if value not in self.latest:
            self.latest[value] = yield value, 0
            self.order.append(value)
        return self.latest[value]

    def again(self, *values: K) -> Generator[tuple[K, int], V, V]:
        """One more run of each value, in turn (interleaved, as a sweep runs its repeats); the last one's figures
        over every run so far."""
        for value in values:
            self.extra[value] = self.extra.get(value, 0) + 1
            self.latest[value] = yield value, self.extra[value]
        return self.latest[values[-1]]


def drive(search: Generator[tuple[K, int], V, R], measure: Callable[[K, int], V]) -> R:
    """Run a search to its end, measuring each (value, extra runs) it asks for with `measure`."""
    try:
        ask = next(search)
        while True:
            ask = search.send(measure(*ask))
    except StopIteration as stop:
        return stop.value
