"""An in-process replica that speaks the router's resume extension and can die mid-stream.

Its "model" is greedy and knows one text: token i reads "t<i> ". A stream sends `group` tokens per
event; with `paretoserve_resume` each event starts with its `: tokens` comment, and a request with
resume tokens continues right after them under the response id it names. A first try (its
`paretoserve_resume` is empty; with `resumed_dies`, any stream) dies after `die_after` events,
halfway through the next one, as a replica killed with SIGKILL does: the connection closes
without the chunked body's end.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field

import uvicorn

from paretoserve.engine_process import free_port
from tests.waiting import wait_until


@dataclass
class TokenReplica:
    die_after: int | None = None  # events a fresh stream sends before dying; None = never
    resumed_dies: bool = False  # resumed streams die the same way
    group: int = 2  # tokens per event
    token_ids: bool = True  # False: an engine without the extension (no comment lines)
    bodies: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ids = itertools.count()

    def __enter__(self) -> "TokenReplica":
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off",
                                interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, "the fake replica serving", interval_s=0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def _app(self, scope, receive, send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw)
        self.bodies.append(body)
        resume = body.get("paretoserve_resume")
        done = (resume or {}).get("tokens") or []
        number = next(self._ids)
        rid = (resume or {}).get("id") or f"cmpl-fake-{self.port}-{number}"
        created = (resume or {}).get("created") or number
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        n, start = body["max_tokens"], len(done)
        dies = self.die_after is not None and ("tokens" not in (resume or {}) or self.resumed_dies)
        for i, first in enumerate(range(start, n, self.group)):
            tokens = list(range(first, min(first + self.group, n)))
            last = tokens[-1] == n - 1
            choice = {"index": 0, "text": "".join(f"t{t} " for t in tokens),
                      "finish_reason": "length" if last else None}
            event = b"data: " + json.dumps({"id": rid, "created": created, "choices": [choice]}).encode() + b"\n\n"
            if self.token_ids and resume is not None:
                event = b": tokens " + " ".join(map(str, tokens)).encode() + b"\n" + event
            if dies and i == self.die_after:
                await send({"type": "http.response.body", "body": event[:len(event) // 2], "more_body": True})
                raise ConnectionAbortedError("the fake replica dies")  # uvicorn drops the connection
            if last:
                usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
                event += b"data: " + json.dumps({"id": rid, "choices": [], "usage": usage}).encode() + b"\n\n"
                event += b"data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": not last})
