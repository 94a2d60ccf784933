"""The engine's Prometheus metrics, in a registry of its own (no process-global state)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Step times run from ~10 ms (batch 1) to ~1 s (large prefill chunks on a CPU).
STEP_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class EngineMetrics:
    """Counters the engine thread bumps once per step, and gauges read from its state at scrape time."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"model_name": model_name}
        r = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, list(labels), registry=r).labels(**labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, list(labels), registry=r).labels(**labels)

        self.requests_running = gauge("paretoserve_requests_running", "Requests holding a batch slot.")
        self.requests_waiting = gauge("paretoserve_requests_waiting", "Requests queued for a slot.")
        self.kv_tokens_used = gauge("paretoserve_kv_tokens_used", "KV cache tokens written by running requests.")
        self.kv_tokens_reserved = gauge("paretoserve_kv_tokens_reserved",
                                        "KV cache tokens reserved by running requests (prompt + max_tokens).")
        self.kv_tokens_budget = gauge("paretoserve_kv_tokens_budget",
                                      "KV cache cells llama.cpp allocated (--kv-tokens, rounded up to 256 per stream).")
        self.max_batch = gauge("paretoserve_max_batch", "Batch cap: most requests decoded together (--max-batch).")
        self.prompt_tokens = counter("paretoserve_prompt_tokens", "Prompt tokens prefilled.")
        self.generation_tokens = counter("paretoserve_generation_tokens", "Tokens generated.")
        self.preemptions = counter("paretoserve_preemptions", "Requests preempted for KV space (0 by design: "
                                   "KV is reserved at admission).")
        self.decode_seconds = counter("paretoserve_decode_seconds", "Time inside llama_decode.")
        self.requests_finished = Counter("paretoserve_requests_finished", "Requests ended, by reason.",
                                         ["model_name", "finished_reason"], registry=r)
        self.step_seconds = Histogram("paretoserve_step_seconds", "Wall time of one engine step "
                                      "(schedule + llama_decode + sampling).", list(labels),
                                      buckets=STEP_BUCKETS, registry=r).labels(**labels)
        self.step_batch = Histogram("paretoserve_step_batch_size", "Sequences in one step.", list(labels),
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r).labels(**labels)
        self._model_name = model_name

    def bind_state(self, running: Callable[[], int], waiting: Callable[[], int], kv_used: Callable[[], int],
                   kv_reserved: Callable[[], int], max_batch: int) -> None:
        """Make the gauges read the engine's live state when scraped, so the step loop never updates them."""
        self.requests_running.set_function(running)
        self.requests_waiting.set_function(waiting)
        self.kv_tokens_used.set_function(kv_used)
        self.kv_tokens_reserved.set_function(kv_reserved)
        self.max_batch.set(max_batch)

    def finished(self, reason: str) -> None:
        self.requests_finished.labels(model_name=self._model_name, finished_reason=reason).inc()
