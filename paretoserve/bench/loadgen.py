"""The load generator: one pooled aiohttp session, three load patterns, streamed responses.

- concurrency: closed loop; N workers, each sends its next request the moment its last one ends,
  so exactly N are in flight until the requests run out. A request's intended send time is the
  moment its worker became free.
- rate: open loop; requests are meant to go out at seeded Poisson (exponential gaps), gamma (`--burstiness`)
  or constant arrival times, whether or not earlier ones finished, optionally ramped up from rate 0
  (`--ramp-up`). Latency counts from that intended time, so a late client shows up in the latency instead
  of hiding it (no coordinated omission).
- burst: every request is meant to go out at t = 0 (the papers' "infinite rate").
- trace: open loop at the times a trace gives each request (`RequestSpec.at_s`), each request once.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import aiohttp

from paretoserve.bench.access import Access
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.workload import RequestSpec

JSON_HEADERS = {"content-type": "application/json"}
LOOP_PROBE_PERIOD_S = 0.1  # event-loop lag probe; waking the client more often slowed a CPU engine sharing its cores


@dataclass(frozen=True)
class LoadPattern:
    mode: str  # concurrency | rate | burst
    concurrency: int = 1
    rate: float | None = None  # requests per second (rate mode)
    arrival: str = "poisson"
    seed: int = 0
    requests: int | None = None  # None = until duration_s (or the end of a trace)
    duration_s: float | None = None  # None = until `requests` were sent
    burstiness: float = 1.0  # gamma arrivals' shape
    ramp_up_s: float = 0.0  # rate mode: seconds over which the rate grows from 0 to `rate`; 0 = none


@dataclass
class LoadResult:
    records: list[RequestRecord]
    client_cpu_s: float  # CPU time of this process during the run (all its threads)
    wall_s: float  # from the first intended send to the end of the last request
    loop_lag_s: list[float] = field(default_factory=list)  # event-loop wake-up delays seen by the probe


def arrival_offsets(rate: float, arrival: str, seed: int, burstiness: float = 1.0,
                    ramp_up_s: float = 0.0) -> Iterator[float]:
    """Intended send times in seconds from the start: the first at 0, then seeded gaps of mean 1/rate:
    exponential (poisson), gamma of shape `burstiness` (coefficient of variation 1/sqrt(shape); 1 = Poisson)
    or exactly 1/rate (constant). With `ramp_up_s`, see `ramp_up`."""
    times = _steady_offsets(rate, arrival, seed, burstiness)
    if ramp_up_s > 0:
        times = (ramp_up(s, ramp_up_s) for s in times)
    yield from times


def _steady_offsets(rate: float, arrival: str, seed: int, burstiness: float) -> Iterator[float]:
    if arrival == "constant":
        yield from (i / rate for i in itertools.count())
        return
    rng, t = random.Random(seed), 0.0
    scale = 1.0 / (rate * burstiness)  # gamma's mean is shape x scale = 1/rate
    while True:
        yield t
        t += rng.expovariate(rate) if arrival == "poisson" else rng.gammavariate(burstiness, scale)


def ramp_up(steady_s: float, ramp_s: float) -> float:
    """The time of an arrival planned at `steady_s` at the full rate, once the rate instead grows linearly from
    0 to full over `ramp_s` seconds and then holds. Arrivals keep their order and draws; the clock is warped
    so that the arrivals sent by time t match the ramp's integral: full rate x t^2 / (2 ramp_s) during the
    ramp, x (t - ramp_s / 2) after it. So the first goes out at 0, the rate is reached at `ramp_s` (after
    rate x ramp_s / 2 requests) and from there every gap is the steady one."""
    if steady_s <= ramp_s / 2:
        return math.sqrt(2.0 * ramp_s * steady_s)
    return steady_s + ramp_s / 2


def trace_offsets(specs: list[RequestSpec]) -> list[float]:
    """A trace's planned send times: each request's own `at_s`, in order."""
    times = [spec.at_s for spec in specs if spec.at_s is not None]
    if len(times) != len(specs) or any(b < a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("trace mode needs every request's at_s, in order (workload.trace builds them)")
    return times


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


class ClientPool:
    """The run's connections: one aiohttp session whose connector keeps up to `connections` keep-alive
    connections, created once and closed with `aclose()` (call it in a `finally`). aiohttp, not httpx:
    a streamed request cost the client 0.19 ms of CPU against 1.4 ms for httpx on this machine."""

    def __init__(self, base_url: str, connections: int, timeout_s: float, access: Access | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        access = access or Access()
        tls = access.ssl_context()
        connector = aiohttp.TCPConnector(limit=max(1, connections), limit_per_host=0, ssl=tls)
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 30.0))
        # trust_env=False: no proxy from the environment between the client and what it measures.
        options: dict[str, Any] = {"timeout": timeout, "trust_env": False, "auto_decompress": False,
                   "skip_auto_headers": ("User-Agent",), "headers": access.headers()}
        self.session = aiohttp.ClientSession(connector=connector, **options)
        # Retries of a request whose pooled connection was dropped: always a new connection, never another
        # pooled one that the server may have dropped as well.
        self.fresh = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0, ssl=tls),
                                           **options)
        # False once the server dropped a kept-alive connection unanswered: from then on (the warm-up's lesson
        # holds for the run) every request goes out on a connection of its own.
        self.reuse = True

    async def touch(self, path: str = "/v1/models") -> None:
        """One cheap request: imports and first-use costs land before the run. Errors are ignored
        (the run reports its own)."""
        try:
            async with self.session.get(self.base_url + path) as response:
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass

    async def aclose(self) -> None:
        await self.session.close()
        await self.fresh.close()


def encode_bodies(builder: RequestBuilder, specs: list[RequestSpec]) -> list[bytes]:
    """Each spec's request body, encoded once: the specs are cycled, and the warm-up sends the same ones."""
    return [builder.body(spec) for spec in specs]


class LoadGenerator:
    """Sends `specs` (cycled when the run needs more) through `pool` in one load pattern."""

    def __init__(self, pool: ClientPool, builder: RequestBuilder, specs: list[RequestSpec],
                 pattern: LoadPattern, on_done: Callable[[RequestRecord], None] | None = None,
                 bodies: list[bytes] | None = None) -> None:
        """`bodies`: the specs' request bodies when the caller already encoded them (several runs, one set)."""
        if not specs:
            raise ValueError("no requests to send")
        self.pool = pool
        self.specs = specs
        self.pattern = pattern
        self.on_done = on_done
        self.records: list[RequestRecord] = []
        self.url = pool.base_url + builder.path
        self._bodies = bodies or encode_bodies(builder, specs)
        self._t0 = 0.0

    async def run(self, start: float | None = None) -> LoadResult:
        """Drive the load; `start` (a perf_counter() value) is t = 0, by default now."""
        lags: list[float] = []
        # Python's collections of the oldest generation paused the client for tens of ms under load (Poisson
        # 2,000 req/s: schedule lag p99 17-46 ms); during the run only the young generations are collected.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
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
            gc.set_threshold(*thresholds)
            gc.unfreeze()
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
        if p.mode == "burst":
            times: Iterator[float] = itertools.repeat(0.0)
        elif p.mode == "trace":
            times = iter(trace_offsets(self.specs))
        else:
            assert p.rate is not None  # BenchConfig requires --rate in rate mode
            times = arrival_offsets(p.rate, p.arrival, p.seed, p.burstiness, p.ramp_up_s)
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
        body = self._bodies[record.index % len(self._bodies)]
        record.sent_s = perf() - t0
        try:
            await self._post(record, body)
        except aiohttp.ClientError as exc:
            record.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except asyncio.TimeoutError:
            record.error = f"timed out after {self.pool.session.timeout.total:g} s"
        except (ValueError, TypeError, AttributeError) as exc:  # an event that is not the JSON we expect
            record.error = f"bad stream event: {exc}"
        record.end_s = perf() - t0
        if self.on_done is not None:
            self.on_done(record)

    async def _post(self, record: RequestRecord, body: bytes) -> None:
        """POST one request and read its answer. A pooled connection that the server dropped before answering
        is retried once on a new connection, and the pool stops reusing connections.

        llama-server answers a streamed request with `Keep-Alive: timeout=5, max=100` and no `Connection: close`,
        then shuts the connection down right after the last chunk (its chunk provider returns false after
        `sink.done()`, which cpp-httplib takes for a cancelled response). aiohttp has already put the connection
        back in its pool by then, so a worker that sends its next request at once writes it to a closed socket
        ("Can not write request body"), and the server reads it in its drain before closing: the second request
        on every connection was lost (a third of the requests at three per worker)."""
        while True:
            answered = False
            pooled = self.pool.reuse and not record.connection_retries
            session = self.pool.session if pooled else self.pool.fresh
            try:
                async with session.post(self.url, data=body, headers=JSON_HEADERS) as response:
                    answered = True
                    if response.status != 200:
                        record.error = await _http_error(response)
                    else:
                        await self._read_stream(record, response)
                return
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if answered or not pooled or isinstance(exc, aiohttp.ClientConnectorError):
                    raise
                record.connection_retries += 1
                self.pool.reuse = False

    async def _read_stream(self, record: RequestRecord, response: aiohttp.ClientResponse) -> None:
        """Parse SSE events as they arrive; every event of one network read gets that read's arrival time."""
        perf, t0 = time.perf_counter, self._t0
        pending, done = b"", False
        async for data in response.content.iter_any():
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


async def _http_error(response: aiohttp.ClientResponse) -> str:
    """'HTTP 429 (Retry-After 1): the queue is full', from an OpenAI-shaped error body where there is one."""
    body = (await response.content.read(2000))
    message = body.decode("utf-8", "replace").strip()
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            message = error["message"]
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    wait = response.headers.get("Retry-After")  # what an overloaded server tells the client, kept in its words
    return f"HTTP {response.status}{f' (Retry-After {wait})' if wait else ''}: {message[:300]}"
