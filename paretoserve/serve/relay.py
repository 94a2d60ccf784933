"""Send one generation request to a replica of its model and relay its answer as it arrives.

A request that fails before any byte reached the client (connection refused or dropped, or a
429/502/503 answer) is sent once more to another replica of the same model (its pool: the replicas that
serve the model it names); a 500 is relayed as it is, since the
request itself most likely caused it and would crash the next replica too. A streamed answer is
held back until its first chunk arrives, so a replica that dies before its first token costs a
retry, not an error. A greedy stream whose replica dies later is resumed once on another of its
model's replicas (serve/resume.py); any other ends with an in-band error event. When the client goes away, the
replica's connection is closed, which makes the engine drop the request; once `data: [DONE]` went
out, the answer is whole and a client that leaves (the openai SDK closes at [DONE], before the
body's end) cuts nothing off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp

from paretoserve.openai_api.protocol import ApiError, wait_disconnect
from paretoserve.serve.backends import Backend, Balancer
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.metrics import RouterMetrics
from paretoserve.serve.resume import Relayed, with_resume

# The replica did no work the client can see and another one may do it: busy, not ready, or a proxy
# in front of it failed. Not 500 (a poison request would crash every replica in turn) nor 504 (it
# would wait as long again, as a router read timeout would).
RETRY_STATUSES = frozenset({429, 502, 503})
JSON_HEADERS = {"content-type": "application/json"}
FORWARDED_RESPONSE_HEADERS = frozenset((b"content-type", b"content-encoding", b"retry-after", b"x-request-id"))
DONE = b"data: [DONE]\n\n"  # a stream's last event, at the end of the engine's last write


class Upstream:
    """A replica's answer, ready to relay: its status line, and either its whole body or an open stream."""

    def __init__(self, backend: Backend, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                 stream: aiohttp.ClientResponse | None = None) -> None:
        self.backend, self.status, self.headers, self.body, self.stream = backend, status, headers, body, stream


class Relay:
    """Sends generation requests to the replicas of a pool (one model's); one per router."""

    def __init__(self, metrics: RouterMetrics, config: RouterConfig) -> None:
        self.metrics, self.config = metrics, config

    async def open(self, pool: Balancer, path: str, body: bytes, headers: Mapping[str, str], stream: bool) -> Upstream:
        """Send the request to a replica of `pool` (retrying once on another of the pool); return the answer with
        the first chunk of a stream."""
        forwarded = self.replica_headers(headers)
        out_headers = {**JSON_HEADERS, **forwarded} if forwarded else JSON_HEADERS
        tried: list[Backend] = []
        refusal: Upstream | None = None
        error = ""
        for attempt in range(2):
            backend = pool.pick(exclude=tried)
            if backend is None:
                break
            if attempt:
                self.metrics.retried(pool)
            tried.append(backend)
            backend.outstanding += 1
            kept, response = False, None
            try:
                response = await backend.client.post(path, data=body, headers=out_headers)
                self.metrics.count(backend, response.status)
                relayed = [(name.lower(), value) for name, value in response.raw_headers
                           if name.lower() in FORWARDED_RESPONSE_HEADERS]
                relayed.append(backend.replica_header)
                if stream and response.status == 200:
                    first = await response.content.readany()
                    kept = True
                    return Upstream(backend, 200, relayed, first, response)
                data = await response.read()
                if response.status in RETRY_STATUSES:
                    refusal = Upstream(backend, response.status, relayed, data)
                    continue
                return Upstream(backend, response.status, relayed, data)
            except asyncio.TimeoutError:  # first: aiohttp's read timeout is a ClientError too
                # A slow replica is busy, not dead: no ejection, and no retry that would wait as long again.
                self.metrics.count(backend, 504)
                raise ApiError(504, f"replica {backend.index} did not answer within {self.config.read_timeout_s:g} s",
                               type_="server_error", code="replica_timeout") from None
            except aiohttp.ClientError as exc:  # refused, reset, or closed mid-body: most likely a dead replica
                backend.eject(self.config.eject_s)
                error = f"replica {backend.index} failed before answering ({type(exc).__name__}: {exc})"
                self.metrics.count(backend, 502)
            finally:
                if not kept:
                    backend.outstanding -= 1
                    if response is not None:
                        response.release()
        if refusal is not None:
            return refusal
        if tried:
            raise ApiError(502, error + ("; retried once on another replica" if len(tried) > 1 else ""),
                           type_="server_error", code="replica_failed")
        raise self.unavailable(pool)

    def replica_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """What a replica gets of the client's headers: its Authorization, unless the router holds a key of its
        own for its replicas (then the session sends that one, and a client's key never leaves the router)."""
        auth = headers.get("authorization")
        return {"authorization": auth} if auth is not None and self.config.replica_key is None else {}

    def unavailable(self, pool: Balancer) -> ApiError:
        """The 503 for 'no replica of the pool can take this now', counted as a refusal."""
        self.metrics.refused.labels("no_replica").inc()
        of = "" if pool.model is None else f" of model '{pool.model}'"
        return ApiError(503, f"no healthy replica{of} ({pool.healthy_count()} of {len(pool.backends)} available); "
                             "retry later", type_="service_unavailable", code="no_replica",
                        headers={"Retry-After": str(self.config.retry_after_s)})


class RelayCall:
    """The ASGI response of one generation request: forward, relay, and stop the replica if the client leaves."""

    def __init__(self, relay: Relay, pool: Balancer, endpoint: str, path: str, body: bytes,
                 headers: Mapping[str, str], stream: bool, resumable: bool = False) -> None:
        self.relay, self.pool, self.endpoint, self.path, self.body, self.headers, self.stream = \
            relay, pool, endpoint, path, body, headers, stream
        asked = with_resume(body, {}) if resumable else None  # the replica then sends each event's token ids
        self.relayed = Relayed() if asked is not None else None
        self.first_body = asked or body
        self.started = time.perf_counter()
        self.finished = False

    async def __call__(self, scope, receive, send) -> None:
        work = asyncio.ensure_future(self._serve(scope, receive, send))
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        watcher.add_done_callback(lambda _: None if self.finished else work.cancel())
        try:
            await work
        except asyncio.CancelledError:
            if not watcher.done():  # we are being cancelled ourselves (server shutdown): pass it on
                work.cancel()
                raise
        finally:
            watcher.cancel()

    async def _serve(self, scope, receive, send) -> None:
        metrics = self.relay.metrics
        try:
            upstream = await self.relay.open(self.pool, self.path, self.first_body, self.headers, self.stream)
        except ApiError as exc:
            self.finished = True
            await exc.response()(scope, receive, send)
            metrics.observe(self.pool, self.endpoint, self.started)
            return
        if upstream.stream is None:
            self.finished = True
            await send({"type": "http.response.start", "status": upstream.status,
                        "headers": [*upstream.headers, (b"content-length", str(len(upstream.body)).encode())]})
            await send({"type": "http.response.body", "body": upstream.body})
            metrics.observe(self.pool, self.endpoint, self.started)
            return
        start: dict | None = {"type": "http.response.start", "status": 200, "headers": upstream.headers}
        resumed = False
        while (failure := await self._relay_stream(upstream, send, start)) is not None:
            start = None
            backend = upstream.backend
            backend.eject(self.relay.config.eject_s)
            metrics.stream_error(backend)
            again = None if resumed else await self._resume()
            if again is None:
                await _send_body(send, _error_event(backend, failure))
                break
            upstream, resumed = again, True  # once: a request that kills its replica must not take down every other one
        self.finished = True
        await send({"type": "http.response.body", "body": b""})
        metrics.observe(self.pool, self.endpoint, self.started)

    async def _relay_stream(self, upstream: Upstream, send, start: dict | None) -> Exception | None:
        """Relay one replica's stream (after the response's `start`, unless it went out already) to its end.

        Returns the error that cut it off, or None.
        """
        stream = upstream.stream
        assert stream is not None  # _serve relays a whole body itself
        complete = False
        try:
            if start is not None:
                await send(start)
            await self._forward(send, upstream.body)
            async for chunk in stream.content.iter_any():
                await self._forward(send, chunk)
            if self.relayed is not None:
                await _send_body(send, self.relayed.rest())
            complete = True
            return None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return exc
        finally:
            if complete:
                stream.release()  # the connection goes back to the pool
            else:
                stream.close()  # closing it tells the engine to drop the request
            upstream.backend.outstanding -= 1

    async def _forward(self, send, chunk: bytes) -> None:
        """Relay one chunk of a stream; the one that ends with `data: [DONE]` makes the answer whole."""
        if chunk.endswith(DONE):
            self.finished = True  # set before it goes out: the client may leave as soon as it has it
        await _send_body(send, chunk if self.relayed is None else self.relayed.feed(chunk))

    async def _resume(self) -> Upstream | None:
        """The stream continued on another replica of its model after the tokens relayed so far; None where it
        cannot be."""
        relayed = self.relayed
        if relayed is None or not relayed.resumable:
            return None
        body = with_resume(self.body, relayed.resume())
        if body is None:
            return None
        try:
            upstream = await self.relay.open(self.pool, self.path, body, self.headers, True)
        except ApiError:
            return None
        if upstream.stream is None:  # refused: every replica busy, or the engine found the resume malformed
            return None
        self.relay.metrics.resumed(self.pool)
        return upstream


async def _send_body(send, data: bytes) -> None:
    if data:  # an empty chunk would say nothing
        await send({"type": "http.response.body", "body": data, "more_body": True})


def _error_event(backend: Backend, exc: Exception) -> bytes:
    """An OpenAI-shaped error as one SSE event, after a blank line that ends any half-sent event."""
    return ApiError(502, f"replica {backend.index} failed mid-response ({type(exc).__name__}: {exc})",
                    type_="server_error", code="replica_failed").stream_end()

