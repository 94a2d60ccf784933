"""The engine: a thread that runs schedule -> llama_decode -> sample, and an async API over it.

llama_decode releases the GIL (ctypes), so the HTTP event loop keeps serving while a step runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import AsyncGenerator

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.llama_load import LlamaError
from paretoserve.engine.llama_runner import LlamaRunner
from paretoserve.engine.metrics import EngineMetrics
from paretoserve.engine.sampling import Sampler, SamplingParams
from paretoserve.engine.scheduler import Scheduler, Sequence, StepItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEvent:
    """New tokens for one request; the last event carries `finish_reason` (stop, length, error)."""

    tokens: tuple[int, ...]
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class EngineState:
    """What the engine looked like after its last step (read by /metrics and the HTTP layer)."""

    running: int = 0
    waiting: int = 0
    kv_used: int = 0
    kv_reserved: int = 0


class Engine:
    """Continuous batching over one llama.cpp context; start() loads the model in the engine thread."""

    def __init__(self, config: EngineConfig, verbose: bool = False) -> None:
        self.config = config
        self.metrics = EngineMetrics(config.model_name)
        self.state = EngineState()
        self.ready = threading.Event()
        self.load_error: BaseException | None = None
        self._runner: LlamaRunner | None = None  # set by the engine thread once the model has loaded
        self._verbose = verbose
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Exact at any moment, unlike `state` (one step old): the 429 check reads them while a step runs.
        self._counts = threading.Lock()
        self._queued = 0  # submitted, not yet holding a slot (in the inbox or the scheduler's queue)
        self._holding = 0  # holding a batch slot
        self._ids = itertools.count()
        self._scheduler = Scheduler(config.max_batch, config.kv_cells, config.step_tokens)
        self._sampler = Sampler()
        self._eog: frozenset[int] = frozenset()
        self._thread = threading.Thread(target=self._run, name="paretoserve-engine", daemon=True)
        self.metrics.bind_state(lambda: self.state.running, self.waiting_count, lambda: self.state.kv_used,
                                lambda: self.state.kv_reserved, config.max_batch)

    # -- lifecycle (any thread) -----------------------------------------------------------

    @property
    def runner(self) -> LlamaRunner:
        """The loaded model; callers check `ready` (and `load_error`) first."""
        if self._runner is None:
            raise RuntimeError("the model has not loaded")
        return self._runner

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The engine thread runs (it ends at stop() or when the model failed to load)."""
        return self._thread.is_alive()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the model is loaded and warmed up; re-raises a load failure."""
        done = self.ready.wait(timeout)
        if self.load_error is not None:
            raise self.load_error
        return done

    def stop(self, timeout: float = 10.0) -> None:
        """Fail whatever is still queued or running and free llama.cpp's memory."""
        self._inbox.put(("stop", None))
        self._thread.join(timeout)

    def waiting_count(self) -> int:
        """Requests submitted but not yet holding a slot."""
        return self._queued

    def free_slots(self) -> int:
        """Batch slots no request holds: requests that will start without queueing."""
        return self.config.max_batch - self._holding

    # -- requests (event loop) ------------------------------------------------------------

    async def generate(self, prompt: list[int], params: SamplingParams) -> AsyncGenerator[TokenEvent, None]:
        """Stream the request's tokens; leaving the iterator early (client gone) frees its sequence."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        seq = Sequence(rid=next(self._ids), prompt=list(prompt), params=params, sink=(loop, events),
                       rng=params.make_rng(), adjust=params.make_adjust())
        self._count(queued=1)
        self._inbox.put(("add", seq))
        finished = False
        try:
            while not finished:
                event = await events.get()
                finished = event.finish_reason is not None
                yield event
        finally:
            if not finished:
                self._inbox.put(("abort", seq.rid))

    # -- engine thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._runner = LlamaRunner(self.config, verbose=self._verbose)
            self._sampler = Sampler(eog_ids=self._runner.eog_ids())
            self._eog = frozenset(self._sampler.eog_ids.tolist())
            self._warm_up()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits for readiness
            self.load_error = exc
            self.ready.set()
            return
        self.metrics.kv_tokens_budget.set(self.runner.kv_cells)
        self.ready.set()
        try:
            while self._take_inbox():
                self._step()
        finally:
            self._shutdown()

    def _take_inbox(self) -> bool:
        """Apply adds and aborts; block while idle. False once asked to stop."""
        sched = self._scheduler
        block = not sched.running and not sched.waiting
        while True:
            try:
                kind, payload = self._inbox.get(block=block)
            except queue.Empty:
                return True
            block = False
            if kind == "stop":
                return False
            if kind == "add" and (problem := self._refusal(payload)):  # never scheduled: nothing to release
                self._count(queued=-1)
                self._deliver([(payload, TokenEvent((), "error", problem))])
            elif kind == "add":
                sched.add(payload)
            elif kind == "abort":
                self._release(payload, reason="abort")

    def _refusal(self, seq: Sequence) -> str | None:
        """Why a request must not reach llama_decode (where it would fail its whole batch), or None."""
        if not seq.prompt or seq.params.max_tokens < 1:
            return f"a request needs a prompt and max_tokens >= 1 (got {len(seq.prompt)} prompt tokens, " \
                   f"max_tokens {seq.params.max_tokens})"
        if seq.reserved > self.config.seq_ctx:
            return f"prompt + max_tokens = {seq.reserved} exceeds --ctx-per-seq {self.config.ctx_per_seq}"
        return None

    def _step(self) -> None:
        sched = self._scheduler
        started = time.perf_counter()
        admitted = len(sched.admit())
        if admitted:  # most decode steps admit nothing: no lock for them
            self._count(queued=-admitted, holding=admitted)
        items = sched.plan()
        if items:
            try:
                logits = self.runner.decode(items)
            except LlamaError as exc:
                log.error("%s", exc)
                self._fail({item.seq for item in items}, str(exc))
            else:
                decoded = time.perf_counter()
                self._deliver(self._postprocess(items, logits))
                self.metrics.decode_seconds.inc(decoded - started)
                self.metrics.step_seconds.observe(time.perf_counter() - started)
                self.metrics.step_batch.observe(len(items))
        self.state = EngineState(len(sched.running), len(sched.waiting), sched.kv_used, sched.kv_reserved)

    def _postprocess(self, items: list[StepItem], logits) -> list[tuple[Sequence, TokenEvent]]:
        """Sample a token for every sequence that produced logits and decide which ones end."""
        out = []
        row = 0
        prompt_tokens = generated = 0
        for item in items:
            seq = item.seq
            seq.n_cached += len(item.tokens)
            if seq.n_cached <= len(seq.prompt):
                prompt_tokens += len(item.tokens)
            if not item.wants_logits:
                continue
            token = self._sampler.sample(logits[row], seq.params, seq.rng, len(seq.output), seq.adjust)
            row += 1
            seq.output.append(token)
            generated += 1
            finish = None
            if token in self._eog and not seq.params.ignore_eos:
                finish = "stop"
            elif len(seq.output) >= seq.params.max_tokens:
                finish = "length"
            out.append((seq, TokenEvent((token,), finish)))
            if finish:
                self._release(seq.rid, reason=finish)
        self.metrics.prompt_tokens.inc(prompt_tokens)
        self.metrics.generation_tokens.inc(generated)
        return out

    def _release(self, rid: int, reason: str) -> None:
        seq = self._scheduler.remove(rid)
        if seq is None:
            return
        if seq.slot >= 0:
            self._count(holding=-1)
            self.runner.free(seq.slot)
        else:
            self._count(queued=-1)
        self.metrics.finished(reason)

    def _count(self, queued: int = 0, holding: int = 0) -> None:
        with self._counts:
            self._queued += queued
            self._holding += holding

    def _fail(self, seqs, message: str) -> None:
        events = []
        for seq in seqs:
            self._release(seq.rid, reason="error")
            events.append((seq, TokenEvent((), "error", message)))
        self._deliver(events)

    def _deliver(self, events: list[tuple[Sequence, TokenEvent]]) -> None:
        """Hand a step's events to their event loops: one wake-up per loop per step."""
        by_loop: dict = {}
        for seq, event in events:
            loop, q = seq.sink
            by_loop.setdefault(loop, []).append((q, event))
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
                loop.call_soon_threadsafe(_put_all, batch)

    def _warm_up(self) -> None:
        """One short prefill and two decode steps, so the first request does not pay for first-touch costs."""
        prompt = self.runner.tokenize("Warm up the engine.")
        seq = Sequence(rid=-1, prompt=prompt, params=SamplingParams(max_tokens=3, temperature=0), sink=None,
                       slot=0)
        logits = self.runner.decode([StepItem(seq, prompt, 0, True)])
        for pos in range(len(prompt), len(prompt) + 2):
            token = int(logits[0].argmax())
            logits = self.runner.decode([StepItem(seq, [token], pos, True)])
        self.runner.free(0)

    def _shutdown(self) -> None:
        sched = self._scheduler
        leftovers = list(sched.running.values()) + list(sched.waiting)
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "add":
                leftovers.append(payload)
        self._fail(leftovers, "the engine is shutting down")
        if self._runner is not None:
            self._runner.close()


def _put_all(batch: list) -> None:
    for q, event in batch:
        q.put_nowait(event)
