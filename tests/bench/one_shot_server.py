"""A streaming server that answers one request per connection and then drops it at the next request's
first bytes, without a `Connection: close`: what llama-server did to a pooled client."""

from __future__ import annotations

import asyncio
import json
import threading

from paretoserve.engine_process import free_port

TOKENS = 4


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, served: list[int]) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    served.append(1)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    events = [{"choices": [{"text": "x"}]} for _ in range(TOKENS)]
    events.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": TOKENS}})
    for event in [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]:
        data = event.encode()
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    await reader.read(1)  # the client reuses the connection: drop it unanswered
    writer.transport.abort()


class OneShotServer:
    """Run in a thread on a free port; `served` counts the requests answered."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.served: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "OneShotServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(lambda r, w: _handle(r, w, self.served), "127.0.0.1", self.port), self._loop).result(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
