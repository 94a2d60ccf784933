"""The router's side of resuming a greedy stream whose replica died (the engine's side: openai_api/resume.py).

A greedy stream asks its replica for token ids (`paretoserve_resume: {}` in the body). The router
relays it whole event by event, taking off each event's `: tokens ...` comment line and keeping
the ids; a half event at the cut is never relayed. When the replica dies, the same body goes to
another replica with those ids, which continues right after the text the client already has.
"""

from __future__ import annotations

import json

FIELD = b'"paretoserve_resume"'
TOKENS = b": tokens "
SEPARATOR = b"\n\n"  # ends an SSE event (the engine never sends \r\n)


def is_greedy(data: dict) -> bool:
    """Whether a body asks for greedy decoding: only then is a resumed stream the stream the client would get."""
    t = data.get("temperature")
    return isinstance(t, (int, float)) and not isinstance(t, bool) and t == 0  # absent means 1, as in OpenAI's API


def with_resume(body: bytes, resume: dict) -> bytes | None:
    """`body`, a JSON object, with the field added last (a repeated key's last value wins); None if not spliceable.

    Splicing the bytes spares encoding the body again for every greedy stream.
    """
    head = body.rstrip()
    if not (head.endswith(b"}") and body.lstrip().startswith(b"{")):  # e.g. a UTF-16 body, which JSON allows
        return None
    return head[:-1] + b", " + FIELD + b": " + json.dumps(resume).encode() + b"}"


class Relayed:
    """What one greedy stream has relayed: the token ids of its events, kept as text until a resume needs them."""

    def __init__(self) -> None:
        self.tokens: list[bytes] = []
        self.first: bytes | None = None  # the first data event: its id and created carry over to a resumed part
        self.resumable = True  # until the stream's end (usage, an error, [DONE]) or an event without token ids
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The whole events that `chunk` completes, token comments taken off; the rest waits for more bytes."""
        if not self._pending and chunk.startswith(TOKENS) and chunk.find(SEPARATOR) == len(chunk) - 2:
            # One whole event, as the engine writes them: a third of the general path's CPU.
            line, _, event = chunk.partition(b"\n")
            self.tokens.append(line[len(TOKENS):])
            if self.first is None:
                self.first = event[:-2]
            return event
        *events, self._pending = (self._pending + chunk).split(SEPARATOR)
        if not events:
            return b""
        for i, event in enumerate(events):
            if event.startswith(TOKENS):
                line, _, events[i] = event.partition(b"\n")
                self.tokens.append(line[len(TOKENS):])
                if self.first is None:
                    self.first = events[i]
            else:
                self.resumable = False
        return SEPARATOR.join(events) + SEPARATOR

    def rest(self) -> bytes:
        """What followed the last whole event of a stream that ended (nothing, from a paretoserve engine)."""
        rest, self._pending = self._pending, b""
        return rest

    def resume(self) -> dict:
        """The `paretoserve_resume` field that continues this stream; the dead replica's half event is dropped."""
        self._pending = b""
        head = json.loads(self.first[len(b"data: "):]) if self.first is not None else {}
        return {"tokens": [int(t) for part in self.tokens for t in part.split()],
                "id": head.get("id"), "created": head.get("created")}
