"""An HTTP request carried over a Ray deployment handle, for the ingress that serves several models.

Only one deployment of an application takes HTTP from Ray's proxy, so with several models the ingress sends each
request (`HandleRequest`: method, path, headers, body) to its model's deployment through a handle; the model's
replica runs it through its own ASGI app, in its own process (`answer`), and streams the app's ASGI messages back
in batches, all that are ready at once; the ingress relays them to its client as they come (`Relayed`). A caller
that goes away closes the stream, and the app then sees its client disconnect, which frees the engine's sequence.

Also here: how a deployment's replica hands the app it built to `serve.ingress`'s builder (`hand_over`, `take_app`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from paretoserve.openai_api.protocol import ApiError

Message = dict  # one ASGI message: http.response.start or http.response.body
CLOSE_S = 5.0  # how long an app may take to wind down once its caller left, before it is cancelled
SSE = b"text/event-stream"


@dataclass(frozen=True)
class HandleRequest:
    """One HTTP request as the ingress got it, to be answered by a model's replica."""

    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    query: bytes = b""
    client: tuple[str, int] | None = None

    def scope(self) -> dict:
        """The ASGI scope of the request, as a server would give it to the app."""
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                "method": self.method, "scheme": "http", "path": self.path, "raw_path": self.path.encode(),
                "query_string": self.query, "root_path": "", "headers": list(self.headers), "client": self.client,
                "server": None}


async def answer(app, request: HandleRequest) -> AsyncGenerator[list[Message], None]:
    """Run `request` through the ASGI `app` here; yield its messages in batches until the app is done."""
    messages: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the app returned
    gone = asyncio.Event()
    body = [{"type": "http.request", "body": request.body, "more_body": False}]

    async def receive() -> Message:
        if body:
            return body.pop()
        await gone.wait()  # the request has no more body: the next event is the client leaving
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.put_nowait(message)

    task = asyncio.ensure_future(app(request.scope(), receive, send))
    task.add_done_callback(lambda _: messages.put_nowait(None))
    try:
        while True:
            batch = [await messages.get()]
            while not messages.empty():  # whatever else is ready goes in the same batch: one handle transfer
                batch.append(messages.get_nowait())
            ready = [m for m in batch if m is not None]
            if ready:
                yield ready
            if len(ready) < len(batch):
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()
                return
    finally:
        gone.set()  # a caller that left (the generator closed early): the app sees its client disconnect
        if not task.done():
            await asyncio.wait({task}, timeout=CLOSE_S)
            task.cancel()


async def whole(stream: AsyncIterator[list[Message]]) -> tuple[int, bytes]:
    """A relayed answer read to its end: its status and body."""
    status, body = 0, b""
    async for batch in stream:
        for message in batch:
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                body += message.get("body", b"")
    return status, body


class Relayed:
    """The ASGI response of a request a model's replica answers: its first batch of messages (fetched before, so
    that a failure to reach the replica is still a clean error), then the rest as they come."""

    def __init__(self, first: list[Message], rest: AsyncIterator[list[Message]], close: Callable[[], None],
                 failed: Callable[[Exception], ApiError]) -> None:
        self.first, self.rest, self.close, self.failed = first, rest, close, failed

    async def __call__(self, scope, receive, send) -> None:
        start = self.first[0]
        streamed = any(name.lower() == b"content-type" and value.startswith(SSE) for name, value in start["headers"])
        ended = False
        try:
            for message in self.first:
                await send(message)
                ended = _ends(message)
            async for batch in self.rest:
                for message in batch:
                    await send(message)
                    ended = _ends(message)
        except Exception as exc:  # noqa: BLE001 - the replica failed mid-answer: end what the client has cleanly
            if not ended:
                tail = self.failed(exc).stream_end() if streamed else b""
                await send({"type": "http.response.body", "body": tail})
            ended = True
        finally:
            if not ended:
                self.close()  # the client left: the replica stops generating for it


def _ends(message: Message) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


# serve.ingress calls its builder with no arguments, in the replica's process, right after the replica's __init__ has
# run there: __init__ leaves the app it built here (Ray runs one replica per actor process).
_BUILT: list = []


def hand_over(app) -> None:
    """Leave `app` for the builder that serve.ingress calls next, in this process."""
    _BUILT.append(app)


def take_app():
    """serve.ingress's builder: the app the replica's __init__ just built."""
    return _BUILT.pop()
