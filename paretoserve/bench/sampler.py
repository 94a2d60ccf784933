"""About once a second while the load runs: the endpoint's /metrics, the engine processes, the GPUs.

/metrics is parsed with prometheus_client's text parser; paretoserve's, vLLM's and llama-server's names are read.
A router serving several models labels each replica's metrics with its `model`: only the model under test's count.
llama-server's /metrics no longer shows KV use: for it, /slots gives the tokens of the busy slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.bench.access import Access
from paretoserve.bench.energy import RaplReader
from paretoserve.bench.gpu import NvmlReader

# sample name -> (field, how label sets combine)
ENGINE_METRICS: dict[str, tuple[str, Callable[[list[float]], float]]] = {
    "paretoserve_requests_running": ("running", sum),
    "paretoserve_requests_waiting": ("waiting", sum),
    "paretoserve_kv_tokens_used": ("kv_tokens_used", sum),
    "paretoserve_kv_tokens_budget": ("kv_tokens_budget", sum),
    "paretoserve_max_batch": ("max_batch", sum),
    "paretoserve_preemptions_total": ("preemptions_total", sum),
    "vllm:num_requests_running": ("running", sum),
    "vllm:num_requests_waiting": ("waiting", sum),
    "vllm:gpu_cache_usage_perc": ("kv_used_fraction", max),  # a fraction in [0, 1] despite the name
    "vllm:kv_cache_usage_perc": ("kv_used_fraction", max),  # its newer name
    "vllm:num_preemptions_total": ("preemptions_total", sum),
    # llama-server (with --metrics): busy slots and requests waiting for one
    "llamacpp:requests_processing": ("running", sum),
    "llamacpp:requests_deferred": ("waiting", sum),
    # older llama-server builds only: KV usage left /metrics in llama.cpp PR #13660 (May 2025); newer ones are
    # read from /slots (LLAMA_SLOTS_PATH)
    "llamacpp:kv_cache_usage_ratio": ("kv_used_fraction", max),
    "llamacpp:kv_cache_tokens": ("kv_tokens_used", sum),
    # SGLang (with --enable-metrics): token_usage is the share of the KV pool in use
    "sglang:num_running_reqs": ("running", sum),
    "sglang:num_queue_reqs": ("waiting", sum),
    "sglang:token_usage": ("kv_used_fraction", max),
    "sglang:num_used_tokens": ("kv_tokens_used", sum),
    "sglang:max_total_num_tokens": ("kv_tokens_budget", sum),
    "sglang:num_retracted_reqs": ("preemptions_total", sum),  # requests sent back to the queue to free KV
}
# What makes an engine serve /metrics, by the `Server` header of its answer when it will not
METRICS_FLAGS = {"llama.cpp": "start llama-server with --metrics"}
LLAMA_SLOTS_PATH = "/slots"  # llama-server's per-slot state (on unless --no-slots)
MODEL_LABEL = "model"  # the label a router serving several models puts on each replica's metrics (serve/metrics.py)


@dataclass(slots=True)
class Sample:
    """One reading; None wherever the source is missing."""

    t_s: float  # seconds since the run's start (negative: before it)
    running: float | None = None
    waiting: float | None = None
    kv_used_fraction: float | None = None
    kv_tokens_used: float | None = None
    kv_tokens_budget: float | None = None
    max_batch: float | None = None
    preemptions_total: float | None = None
    rss_bytes: int | None = None  # engine processes and their children
    engine_cpu_s: float | None = None  # cumulative CPU time of the engine processes
    gpu_memory_used_bytes: int | None = None
    gpu_util_percent: float | None = None
    gpu_power_w: float | None = None
    gpu_energy_j: float | None = None  # cumulative counter
    rapl_energy_j: float | None = None  # cumulative counter

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_metrics(text: str, model: str | None = None) -> dict[str, float]:
    """The engine gauges and counters we know, from Prometheus text; kv_used_fraction derived for ours. With `model`,
    a sample labelled with another `model` (another model's replica behind the same router) is left out."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            known = ENGINE_METRICS.get(sample.name)
            if known is not None and (model is None or sample.labels.get(MODEL_LABEL, model) == model):
                found.setdefault(sample.name, []).append(sample.value)
    values: dict[str, float] = {}
    for name, vals in found.items():
        field, combine = ENGINE_METRICS[name]
        values[field] = combine(vals)
    if "kv_used_fraction" not in values and values.get("kv_tokens_budget"):
        values["kv_used_fraction"] = values.get("kv_tokens_used", 0.0) / values["kv_tokens_budget"]
    return values


def parse_llama_slots(slots: object) -> dict[str, float]:
    """KV tokens written by the running requests and the KV budget, from llama-server's /slots JSON: a busy
    slot's `n_prompt_tokens` counts its prompt and what it generated so far, `n_ctx` is each slot's share."""
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        raise ValueError("not a list of slots")
    budget = sum(s.get("n_ctx", 0) for s in slots)
    if not budget:
        return {}
    used = sum(s.get("n_prompt_tokens", 0) for s in slots if s.get("is_processing"))
    return {"kv_tokens_used": used, "kv_tokens_budget": budget, "kv_used_fraction": used / budget}


class EngineProcesses:
    """Memory and CPU time of the engine processes and everything they started."""

    def __init__(self, pids: tuple[int, ...] | list[int]) -> None:
        self.pids = tuple(pids)
        self._roots = []
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                self._roots.append(psutil.Process(pid))
        self._cpu: dict[int, float] = {}  # per process, so a child that exits keeps its share

    def read(self) -> tuple[int | None, float | None]:
        """(RSS summed, CPU seconds summed over every process seen so far)."""
        if not self._roots:
            return None, None
        rss, seen = 0, set()
        for root in self._roots:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                try:
                    with proc.oneshot():
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                except psutil.Error:
                    continue
                self._cpu[proc.pid] = max(self._cpu.get(proc.pid, 0.0), times.user + times.system)
        return (rss if seen else None), sum(self._cpu.values())


class Sampler:
    """Takes a Sample every `interval_s` until stopped; `sample()` takes one at once. With `model`, the endpoint's
    metrics of other models (labelled `model` by a router that serves several) are left out."""

    def __init__(self, base_url: str, metrics_path: str, processes: EngineProcesses,
                 gpu: NvmlReader | None = None, rapl: RaplReader | None = None, interval_s: float = 1.0,
                 access: Access | None = None, model: str | None = None) -> None:
        self.metrics_url = base_url.rstrip("/") + metrics_path
        self.model = model
        self.slots_url = base_url.rstrip("/") + LLAMA_SLOTS_PATH
        self.processes = processes
        self.access = access or Access()
        self.gpu = gpu
        self.rapl = rapl
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.metrics_error: str | None = None  # why /metrics could not be read, once it could not
        self._client: httpx.AsyncClient | None = None
        self._metrics_on = True
        self._slots_on = True  # read /slots while a llama-server's /metrics lacks KV use and /slots answers
        self._t0 = time.perf_counter()

    async def __aenter__(self) -> "Sampler":
        self._client = httpx.AsyncClient(timeout=2.0, trust_env=False, headers=self.access.headers(),
                                         verify=self.access.ssl_context())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client for /metrics, open inside `async with`."""
        if self._client is None:
            raise RuntimeError("the sampler is used outside `async with`")
        return self._client

    def set_start(self, t0: float) -> None:
        """Sample times count from this perf_counter() value (the load generator's start)."""
        for s in self.samples:
            s.t_s += self._t0 - t0
        self._t0 = t0

    async def sample(self) -> Sample:
        s = Sample(t_s=time.perf_counter() - self._t0)
        if self._metrics_on:
            for field, value in (await self._scrape()).items():
                setattr(s, field, value)
        s.rss_bytes, s.engine_cpu_s = self.processes.read()
        if self.gpu is not None:
            reading = self.gpu.read()
            if reading is not None:
                s.gpu_memory_used_bytes, s.gpu_util_percent = reading.memory_used_bytes, reading.util_percent
                s.gpu_power_w, s.gpu_energy_j = reading.power_w, reading.energy_j
        if self.rapl is not None:
            with contextlib.suppress(OSError, ValueError):
                s.rapl_energy_j = self.rapl.read()
        self.samples.append(s)
        return s

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every interval until `stop` is set (a sample in flight completes)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except asyncio.TimeoutError:
                await self.sample()

    async def _scrape(self) -> dict[str, float]:
        try:
            response = await self.client.get(self.metrics_url)
        except httpx.HTTPError as exc:
            self.metrics_error = f"{self.metrics_url}: {type(exc).__name__}"
            return {}
        if response.status_code != 200:
            self.metrics_error = f"{self.metrics_url}: HTTP {response.status_code}"
            server = response.headers.get("server", "")
            flag = next((hint for name, hint in METRICS_FLAGS.items() if name in server), None)
            if flag:
                self.metrics_error += f" ({flag})"
            # a 404 or 501 (llama-server without --metrics) will not change: stop asking
            self._metrics_on = response.status_code >= 500 and response.status_code != 501
            return {}
        try:
            values = parse_metrics(response.text, self.model)
        except ValueError as exc:
            self.metrics_error = f"{self.metrics_url}: not Prometheus text ({exc})"
            self._metrics_on = False
            return {}
        if self._slots_on and "kv_used_fraction" not in values and "llamacpp:" in response.text:
            values.update(await self._llama_slots())
        return values

    async def _llama_slots(self) -> dict[str, float]:
        """llama-server's KV use from /slots; a server that will not say (--no-slots: 501) stops being asked."""
        try:
            response = await self.client.get(self.slots_url)
        except httpx.HTTPError:
            return {}  # a busy server may answer the next one
        try:
            if response.status_code == 200:
                return parse_llama_slots(response.json())
        except ValueError:
            pass
        self._slots_on = False
        return {}
