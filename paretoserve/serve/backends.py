"""The router's side of each replica (pooled client, requests in flight) and the least-outstanding choice among
the replicas of one model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp


class ReplicaView(Protocol):
    """What the router reads about a replica; the supervisor's Replica is one."""

    index: int
    url: str
    healthy: bool

    def status(self) -> dict: ...


@dataclass
class StaticReplica:
    """A replica the router does not supervise: a fixed URL, healthy until told otherwise (tests, benchmarks)."""

    index: int
    url: str
    healthy: bool = True

    def status(self) -> dict:
        return {"replica": self.index, "url": self.url, "healthy": self.healthy}


class Backend:
    """One replica as the router sees it: one pooled aiohttp session and the requests it holds now."""

    def __init__(self, replica: ReplicaView, model: str | None = None) -> None:
        self.replica = replica
        self.index = replica.index
        self.model = model  # the name its model is served under; None where the router serves one unnamed model
        self.label = str(replica.index)  # the `replica` label of its metrics
        # Every label of its metrics: `model` too where the router serves several models.
        self.labels = {"replica": self.label} if model is None else {"model": model, "replica": self.label}
        self.replica_header = (b"x-paretoserve-replica", self.label.encode())  # on every answer it gives
        self.session: aiohttp.ClientSession | None = None  # created in the router's lifespan, on the serving loop
        self.outstanding = 0
        self.ejected_until = 0.0  # monotonic seconds; set when it refused or dropped a connection

    @property
    def client(self) -> aiohttp.ClientSession:
        """Its session; the router's lifespan opens it before any request is relayed."""
        if self.session is None:
            raise RuntimeError(f"replica {self.index}: no session outside the router's lifespan")
        return self.session

    def available(self, now: float) -> bool:
        return self.replica.healthy and now >= self.ejected_until

    def eject(self, seconds: float) -> None:
        """Send it nothing for `seconds`: long enough for the supervisor's health checks to notice a dead one."""
        self.ejected_until = time.monotonic() + seconds


class Balancer:
    """Least outstanding requests among the available backends, all of one model; ties go round-robin."""

    def __init__(self, backends: list[Backend], model: str | None = None) -> None:
        self.backends = backends
        self.model = model  # None: the router's one unnamed model
        self.labels = {} if model is None else {"model": model}  # of the metrics counted per model
        self._turn = 0

    def pick(self, exclude: list[Backend] | tuple = ()) -> Backend | None:
        """The available backend with the fewest requests in flight, or None when there is none."""
        now = time.monotonic()
        n = len(self.backends)
        self._turn = (self._turn + 1) % n
        best = None
        for offset in range(n):
            backend = self.backends[(self._turn + offset) % n]
            if backend in exclude or not backend.available(now):
                continue
            if best is None or backend.outstanding < best.outstanding:
                best = backend
        return best

    def healthy_count(self) -> int:
        now = time.monotonic()
        return sum(b.available(now) for b in self.backends)
