"""Per-client limits in the router, so that one client cannot starve the rest: at most N generation requests
in flight per client, and at most R new ones per second (a token bucket holding one second's worth, at least 1).

A client is the API key a request came with (auth.py notes it in the scope), or without keys its address.
Past a limit the router answers the 429 the engine gives for a full queue, with `Retry-After`. A request is
counted from its arrival until the app returns, which it does on every path: answered, refused, the client
gone, the stream cut, the replica failed, or an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from prometheus_client import Counter

from paretoserve.openai_api.auth import CLIENT_SCOPE_KEY
from paretoserve.openai_api.protocol import ApiError

ADDRESS_LABEL = "address"  # every client known by its address shares one metrics label: addresses are unbounded
PRUNE_AT_LEAST = 1024  # clients tracked before idle ones are forgotten (then each time their number doubles)


@dataclass
class _Client:
    in_flight: int = 0
    tokens: float = 0.0  # requests the bucket allows now
    stamp: float = 0.0  # the clock's seconds when `tokens` was last brought up to date


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: which limit ('concurrency' or 'rate'), and the seconds a retry should wait."""

    limit: str
    retry_after_s: int
    message: str


class ClientLimiter:
    """The in-flight counts and token buckets of every client; 0 turns a limit off."""

    def __init__(self, max_concurrent: int = 0, max_rate: float = 0.0, retry_after_s: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrent, self.max_rate, self.retry_after_s, self.clock = \
            max_concurrent, max_rate, retry_after_s, clock
        self.burst = max(1.0, max_rate)  # one second of requests at once, and at least one
        self._clients: dict[str, _Client] = {}
        self._prune_at = PRUNE_AT_LEAST

    @property
    def enabled(self) -> bool:
        return self.max_concurrent > 0 or self.max_rate > 0

    def in_flight(self, client: str) -> int:
        """Requests of `client` admitted and not yet released."""
        found = self._clients.get(client)
        return found.in_flight if found is not None else 0

    def tracked(self) -> int:
        """Clients whose state is kept (in flight, or with a bucket still refilling)."""
        return len(self._clients)

    def admit(self, client: str) -> Refusal | None:
        """None when the request may go on (then it counts until `release`); else why it may not."""
        now = self.clock()
        state = self._clients.get(client)
        if state is None:
            if len(self._clients) >= self._prune_at:
                self._prune(now)
            state = self._clients[client] = _Client(tokens=self.burst, stamp=now)
        if self.max_concurrent and state.in_flight >= self.max_concurrent:
            return Refusal("concurrency", self.retry_after_s,
                           f"{state.in_flight} requests of this client are in flight, the most "
                           f"--max-concurrent-per-client allows; retry once one has finished")
        if self.max_rate:
            state.tokens = min(self.burst, state.tokens + (now - state.stamp) * self.max_rate)
            state.stamp = now
            if state.tokens < 1.0:
                wait_s = (1.0 - state.tokens) / self.max_rate
                return Refusal("rate", max(1, math.ceil(wait_s)),
                               f"this client is past --max-rate-per-client {self.max_rate:g} requests/s; "
                               f"the next one is allowed in {wait_s:.3g} s")
            state.tokens -= 1.0
        state.in_flight += 1
        return None

    def release(self, client: str) -> None:
        """One request of `client` has ended; a client with nothing in flight and a full bucket is forgotten."""
        state = self._clients[client]
        state.in_flight -= 1
        if state.in_flight == 0 and self._idle(state, self.clock()):
            del self._clients[client]

    def _idle(self, state: _Client, now: float) -> bool:
        """Nothing in flight, and a bucket that would be full by now: forgetting the client changes nothing."""
        return state.in_flight == 0 and (not self.max_rate or
                                         state.tokens + (now - state.stamp) * self.max_rate >= self.burst)

    def _prune(self, now: float) -> None:
        for name in [n for n, s in self._clients.items() if self._idle(s, now)]:
            del self._clients[name]
        self._prune_at = max(PRUNE_AT_LEAST, 2 * len(self._clients))  # amortised: one sweep per doubling


def client_of(scope: dict) -> tuple[str, str]:
    """Who sent a request: (its limiter key, its metrics label); the key's label, else its address."""
    key = scope.get(CLIENT_SCOPE_KEY)
    if key is not None:
        return key, key
    address = scope.get("client")
    return f"address {address[0] if address else 'unknown'}", ADDRESS_LABEL


class LimitClients:
    """ASGI middleware: a request for one of `paths` past its client's limit gets the 429; any other is counted
    while the app runs. It goes inside the API key check, which names the client."""

    def __init__(self, app, limiter: ClientLimiter, refused: Counter, paths: Collection[str]) -> None:
        self.app, self.limiter, self.refused, self.paths = app, limiter, refused, paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client, label = client_of(scope)
        refusal = self.limiter.admit(client)
        if refusal is not None:
            self.refused.labels(label, refusal.limit).inc()
            code = "rate_limit_exceeded" if refusal.limit == "rate" else "concurrency_limit_exceeded"
            error = ApiError(429, refusal.message, type_="rate_limit_error", code=code,
                             headers={"Retry-After": str(refusal.retry_after_s)})
            await error.response()(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(client)
