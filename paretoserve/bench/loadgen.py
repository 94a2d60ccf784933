"""The load generator: one pooled httpx.AsyncClient, three load patterns, streamed responses.

- concurrency: closed loop; N workers, each sends its next request the moment its last one ends,
  so exactly N are in flight until the requests run out. A request's intended send time is the
  moment its worker became free.
- rate: open loop; requests are meant to go out at seeded Poisson (exponential gaps) or constant
  arrival times, whether or not earlier ones finished. Latency counts from that intended time, so a
  late client shows up in the latency instead of hiding it (no coordinated omission).
- burst: every request is meant to go out at t = 0 (the papers' "infinite rate").
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import certifi
import httpx

from paretoserve.bench.records import RequestRecord
from paretoserve.bench.workload import RequestSpec

LOOP_PROBE_PERIOD_S = 0.1  # event-loop lag probe; waking the client more often slowed a CPU engine sharing its cores


@dataclass(frozen=True)
class LoadPattern:
    mode: str  # concurrency | rate | burst
    concurrency: int = 1
    rate: float | None = None  # requests per second (rate mode)
    arrival: str = "poisson"
    seed: int = 0
    requests: int | None = None  # None = until duration_s
    duration_s: float | None = None  # None = until `requests` were sent


@dataclass
class LoadResult:
    records: list[RequestRecord]
    client_cpu_s: float  # CPU time of this process during the run (all its threads)
    wall_s: float  # from the first intended send to the end of the last request
    loop_lag_s: list[float] = field(default_factory=list)  # event-loop wake-up delays seen by the probe


def arrival_offsets(rate: float, arrival: str, seed: int) -> Iterator[float]:
    """Intended send times in seconds from the start: the first at 0, then seeded gaps of mean 1/rate."""
    if arrival == "constant":
        yield from (i / rate for i in itertools.count())
        return
    rng, t = random.Random(seed), 0.0
    while True:
        yield t
        t += rng.expovariate(rate)


class RequestBuilder:
    """Request bodies for /v1/completions or /v1/chat/completions, streamed with usage."""

    def __init__(self, endpoint: str, model: str | None, ignore_eos: bool, temperature: float) -> None:
        self.path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
        self._chat = endpoint == "chat"
        self._common: dict = {"stream": True, "stream_options": {"include_usage": True}, "temperature": temperature}
        if model:
            self._common["model"] = model
        if ignore_eos:
            self._common["ignore_eos"] = True  # vLLM, SGLang and paretoserve accept it; OpenAI does not

    def body(self, spec: RequestSpec) -> bytes:
        body = dict(self._common, max_tokens=spec.output_tokens)
        prompt = list(spec.prompt) if isinstance(spec.prompt, tuple) else spec.prompt
        if self._chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return json.dumps(body, separators=(",", ":")).encode()


# httpcore scans every connection of a pool on each request and each response close, so one big
# pool costs O(connections) per request: 64 connections in one client managed ~250 streamed req/s
# here, in eight clients of 8 connections ~770. Past ~8, another client is cheaper than a bigger pool.
CONNECTIONS_PER_CLIENT = 8


class ClientPool:
    """The run's connections: pooled httpx.AsyncClients of up to CONNECTIONS_PER_CLIENT connections
    each, created once and closed with `aclose()` (call it in a `finally`). A request takes the
    least busy client, so no client ever holds more requests than it has connections."""

    def __init__(self, base_url: str, connections: int, timeout_s: float) -> None:
        n = max(1, math.ceil(connections / CONNECTIONS_PER_CLIENT))
        per_client = min(connections, CONNECTIONS_PER_CLIENT) if connections > 0 else 1
        tls = ssl.create_default_context(cafile=certifi.where())  # one TLS context for all of them
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0), pool=None)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        # trust_env=False: no proxy from the environment between the client and what it measures.
        self.clients = [httpx.AsyncClient(base_url=base_url.rstrip("/"), trust_env=False, verify=tls, timeout=timeout,
                                          limits=limits) for _ in range(n)]
        self._busy = [0] * n

    def acquire(self) -> int:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        return i

    def release(self, i: int) -> None:
        self._busy[i] -= 1

    async def touch(self, path: str = "/v1/models") -> None:
        """One cheap request through every client: imports and first-use costs land before the run, and
        each client starts with an open connection. Errors are ignored (the run reports its own)."""
        async def one(client: httpx.AsyncClient) -> None:
            try:
                await client.get(path)
            except httpx.HTTPError:
                pass

        await asyncio.gather(*(one(c) for c in self.clients))

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


class LoadGenerator:
    """Sends `specs` (cycled when the run needs more) through `pool` in one load pattern."""

    def __init__(self, pool: ClientPool, builder: RequestBuilder, specs: list[RequestSpec],
                 pattern: LoadPattern, on_done: Callable[[RequestRecord], None] | None = None) -> None:
        if not specs:
            raise ValueError("no requests to send")
        self.pool = pool
        self.builder = builder
        self.specs = specs
        self.pattern = pattern
        self.on_done = on_done
        self.records: list[RequestRecord] = []
        self._t0 = 0.0

    async def run(self, start: float | None = None) -> LoadResult:
        """Drive the load; `start` (a perf_counter() value) is t = 0, by default now."""
        lags: list[float] = []
        probe = asyncio.create_task(self._probe_loop(lags))
        cpu0 = time.process_time()
        self._t0 = time.perf_counter() if start is None else start
        try:
            if self.pattern.mode == "concurrency":
                await self._closed_loop()
            else:
                await self._open_loop()
        finally:
            probe.cancel()
        cpu = time.process_time() - cpu0
        ends = [r.end_s for r in self.records if r.end_s is not None]
        return LoadResult(self.records, cpu, max(ends, default=0.0), lags)

    def now(self) -> float:
        """Seconds since the start of the run."""
        return time.perf_counter() - self._t0

    # -- load patterns --------------------------------------------------------------------

    def _new_record(self, intended_s: float) -> RequestRecord | None:
        """The next request's record, or None when the run has sent all it should."""
        p = self.pattern
        index = len(self.records)
        if p.requests is not None and index >= p.requests:
            return None
        if p.duration_s is not None and intended_s >= p.duration_s:
            return None
        spec = self.specs[index % len(self.specs)]
        record = RequestRecord(index, intended_s, spec.output_tokens, spec.input_tokens)
        self.records.append(record)
        return record

    async def _closed_loop(self) -> None:
        async def worker() -> None:
            while (record := self._new_record(self.now())) is not None:
                await self._send(record)

        n = self.pattern.concurrency if self.pattern.requests is None else min(self.pattern.concurrency,
                                                                              self.pattern.requests)
        await asyncio.gather(*(worker() for _ in range(n)))

    async def _open_loop(self) -> None:
        p = self.pattern
        times = itertools.repeat(0.0) if p.mode == "burst" else arrival_offsets(p.rate, p.arrival, p.seed)
        tasks: set[asyncio.Task] = set()
        for intended in times:
            record = self._new_record(intended)
            if record is None:
                break
            delay = intended - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._send(record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    async def _probe_loop(self, lags: list[float]) -> None:
        """How late the event loop wakes up: the error every timestamp of this run may carry."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(LOOP_PROBE_PERIOD_S)
            lags.append(time.perf_counter() - start - LOOP_PROBE_PERIOD_S)

    # -- one request ----------------------------------------------------------------------

    async def _send(self, record: RequestRecord) -> None:
        perf, t0 = time.perf_counter, self._t0
        start = perf()
        spec = self.specs[record.index % len(self.specs)]
        shard = self.pool.acquire()
        client = self.pool.clients[shard]
        request = client.build_request("POST", self.builder.path, content=self.builder.body(spec),
                                       headers={"content-type": "application/json"})
        record.client_s += perf() - start
        record.sent_s = perf() - t0
        try:
            response = await client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    record.error = await _http_error(response)
                else:
                    await self._read_stream(record, response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except (ValueError, TypeError, AttributeError) as exc:  # an event that is not the JSON we expect
            record.error = f"bad stream event: {exc}"
        finally:
            self.pool.release(shard)
        record.end_s = perf() - t0
        if self.on_done is not None:
            self.on_done(record)

    async def _read_stream(self, record: RequestRecord, response: httpx.Response) -> None:
        """Parse SSE events as they arrive; every event of one network read gets that read's arrival time."""
        perf, t0 = time.perf_counter, self._t0
        pending, done = b"", False
        async for data in response.aiter_bytes():
            arrived = perf()
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                event = json.loads(payload)
                if "error" in event:
                    error = event["error"]
                    message = error.get("message", error) if isinstance(error, dict) else error
                    record.error = f"in-stream error: {message}"
                    continue
                choices = event.get("choices")
                if choices:
                    choice = choices[0]
                    text = choice.get("text")
                    if text is None:
                        text = (choice.get("delta") or {}).get("content")
                    if text:
                        record.token_s.append(arrived - t0)
                usage = event.get("usage")
                if usage:
                    record.input_tokens = usage.get("prompt_tokens", record.input_tokens)
                    record.output_tokens = usage.get("completion_tokens", 0)
                    record.usage_reported = True
            record.client_s += perf() - arrived
        if not record.usage_reported:
            record.output_tokens = len(record.token_s)
        if not done and record.error is None:
            record.error = "the stream ended before data: [DONE]"


async def _http_error(response: httpx.Response) -> str:
    """'HTTP 429: the queue is full', from an OpenAI-shaped error body where there is one."""
    body = (await response.aread())[:2000]
    message = body.decode("utf-8", "replace").strip()
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            message = error["message"]
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code}: {message[:300]}"
