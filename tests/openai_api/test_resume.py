"""The engine's side of a resumed stream: cut an engine's stream after any event, resume it, and the client's
text, usage and ids are those of the stream without the cut (a scripted engine behind the real HTTP layer)."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import httpx
import pytest

from paretoserve.engine.core import TokenEvent
from paretoserve.openai_api.app import ServerConfig, build_app
from tests.fakes.vocab import Vocab

PROMPT = [0, 3]
VOCAB = Vocab("Hi", " \xe2".encode("latin-1"), b"\x82", b"\xac and", " ST", "O", "x", b" caf\xc3", b"\xa9 ok", "P")
LONG = [0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 5, 6, 1, 2, 3, 0]  # "€" and "é" split across tokens, " ST" held back twice


class ScriptedEngine:
    """The Engine's surface the HTTP layer uses; it 'generates' `script` after PROMPT, whatever the sampling."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.config = SimpleNamespace(model_name="fake", seq_ctx=64, max_queue=4)
        self.runner = SimpleNamespace(piece=VOCAB, n_vocab=len(VOCAB.pieces), chat_template=lambda: None,
                                      tokenize=lambda text: PROMPT)
        self.ready, self.load_error = threading.Event(), None
        self.ready.set()
        self.params = []  # of every request

    def waiting_count(self) -> int:
        return 0

    def free_slots(self) -> int:
        return 1

    async def generate(self, prompt: list[int], params):
        done = prompt[len(PROMPT):]
        assert prompt[:len(PROMPT)] == PROMPT and done == self.script[:len(done)]  # continues after the ids
        self.params.append(params)
        for i in range(params.max_tokens):
            yield TokenEvent((self.script[len(done) + i],), "length" if i == params.max_tokens - 1 else None)


def _events(raw: str) -> list[tuple[list[int], object]]:
    """(token ids, decoded data) of each SSE event."""
    out = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        tokens = [int(t) for t in lines.pop(0)[len(": tokens "):].split()] if block.startswith(": tokens") else []
        (data,) = lines
        payload = data[len("data: "):]
        out.append((tokens, payload if payload == "[DONE]" else json.loads(payload)))
    return out


def _text(events, chat: bool = False) -> str:
    choices = [d["choices"][0] for _, d in events if isinstance(d, dict) and d.get("choices")]
    return "".join(c["delta"].get("content", "") if chat else c["text"] for c in choices)


def _request(app, body: dict, path: str = "/v1/completions") -> httpx.Response:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
            return await client.post(path, json=body)
    return asyncio.run(send())


def _post(app, body: dict, chat: bool) -> list:
    response = _request(app, body, "/v1/chat/completions" if chat else "/v1/completions")
    assert response.status_code == 200, response.text
    return _events(response.text)


@pytest.mark.parametrize("stop, min_tokens", [((), 0), (("STOx c",), 0), (("STO",), 0), (("STO",), 7)])
@pytest.mark.parametrize("chat", [False, True])
def test_a_stream_resumed_after_any_event_reads_as_the_stream_without_the_cut(stop, min_tokens, chat):
    engine = ScriptedEngine(LONG)
    app = build_app(engine, ServerConfig())
    body = {"max_tokens": len(LONG), "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
            "stop": list(stop), "min_tokens": min_tokens, "paretoserve_resume": {}}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if chat else {"prompt": PROMPT})
    whole = _post(app, body, chat)
    content = [e for e in whole if e[0]]
    assert _tokens(whole) == LONG[:len(_tokens(whole))]  # every token once, in order
    for cut in range(1, len(content)):
        head = content[:cut]
        tokens = [t for ids, _ in head for t in ids]
        first = head[0][1]
        tail = _post(app, {**body, "paretoserve_resume": {"tokens": tokens, "id": first["id"],
                                                             "created": first["created"]}}, chat)
        assert _text(head, chat) + _text(tail, chat) == _text(whole, chat)
        assert [d for _, d in tail][-2:] == [d for _, d in whole][-2:]  # the same usage (and id), then [DONE]
        assert _finish(tail) == _finish(whole) == ("stop" if stop else "length")
        assert {d["id"] for _, d in tail[:-1]} == {first["id"]}
        assert engine.params[-1].max_tokens == len(LONG) - len(tokens)
        assert engine.params[-1].min_tokens == max(min_tokens - len(tokens), 0)
        if chat:
            assert all("role" not in d["choices"][0]["delta"] for _, d in tail if isinstance(d, dict) and d["choices"])


def _finish(events) -> str:
    return [d for _, d in events if isinstance(d, dict) and d["choices"]][-1]["choices"][0]["finish_reason"]


def _tokens(events) -> list[int]:
    return [t for tokens, _ in events for t in tokens]


def test_without_the_extension_the_stream_has_no_token_comments():
    app = build_app(ScriptedEngine(LONG), ServerConfig())
    response = _request(app, {"prompt": PROMPT, "max_tokens": 4, "stream": True})
    assert ": tokens" not in response.text and response.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("resume, message", [({"tokens": LONG[:4]}, "nothing is left"),
                                             ({"tokens": [99]}, "outside the vocabulary"),
                                             ({"tokens": [1], "extra": 1}, "paretoserve_resume.extra")])
def test_a_malformed_resume_is_a_400_naming_the_field(resume, message):
    app = build_app(ScriptedEngine(LONG), ServerConfig())
    response = _request(app, {"prompt": PROMPT, "max_tokens": 4, "stream": True, "paretoserve_resume": resume})
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert response.json()["error"]["param"].startswith("paretoserve_resume")
