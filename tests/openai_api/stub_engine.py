"""An in-process stand-in for the Engine behind the HTTP API: one byte per token, no model.

`tokenize` encodes as UTF-8 the way the real runner does, so text it cannot take fails here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Iterator

import httpx
from prometheus_client import CollectorRegistry

from paretoserve.engine.core import TokenEvent
from paretoserve.engine.sampling import SamplingParams
from paretoserve.openai_api.app import ServerConfig, build_app
from tests.serve.helpers import running_app
from tests.waiting import HANG_S

N_VOCAB = 256


@dataclass
class StubRunner:
    n_vocab: int = N_VOCAB
    fail_with: Exception | None = None  # raised by tokenize: a bug inside the engine

    def tokenize(self, text: str) -> list[int]:
        if self.fail_with is not None:
            raise self.fail_with
        return list(text.encode())

    def piece(self, token: int) -> bytes:
        return b"x"

    def chat_template(self) -> str | None:
        return None


@dataclass
class StubEngine:
    """Generates `max_tokens` tokens of 'x' (one event each), after `delay_s` per token."""

    ctx_per_seq: int = 64
    delay_s: float = 0.0
    runner: StubRunner = field(default_factory=StubRunner)
    requests: list[SamplingParams] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = SimpleNamespace(model_name="stub-model", seq_ctx=self.ctx_per_seq, max_queue=8)
        self.metrics = SimpleNamespace(registry=CollectorRegistry())
        self.ready = threading.Event()
        self.ready.set()
        self.load_error = None

    def waiting_count(self) -> int:
        return 0

    def free_slots(self) -> int:
        return 1

    async def generate(self, prompt: list[int], params: SamplingParams):
        self.requests.append(params)
        for i in range(params.max_tokens):
            await asyncio.sleep(self.delay_s)
            yield TokenEvent((120,), "length" if i == params.max_tokens - 1 else None)


@contextlib.contextmanager
def stub_client(engine: StubEngine | None = None) -> Iterator[tuple[httpx.Client, StubEngine]]:
    """The engine's app over `engine`, served by uvicorn in a thread; an httpx client bound to it."""
    engine = engine or StubEngine()
    with running_app(build_app(engine, ServerConfig())) as url, httpx.Client(base_url=url, timeout=HANG_S) as client:
        yield client, engine
