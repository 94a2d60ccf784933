"""About once a second while the load runs: the endpoint's /metrics, the engine processes, the GPUs.

/metrics is parsed with prometheus_client's text parser; both paretoserve's and vLLM's names are read.
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
}


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


def parse_metrics(text: str) -> dict[str, float]:
    """The engine gauges and counters we know, from Prometheus text; kv_used_fraction derived for ours."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            known = ENGINE_METRICS.get(sample.name)
            if known is not None:
                found.setdefault(sample.name, []).append(sample.value)
    values: dict[str, float] = {}
    for name, vals in found.items():
        field, combine = ENGINE_METRICS[name]
        values[field] = combine(vals)
    if "kv_used_fraction" not in values and values.get("kv_tokens_budget"):
        values["kv_used_fraction"] = values.get("kv_tokens_used", 0.0) / values["kv_tokens_budget"]
    return values


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
    """Takes a Sample every `interval_s` until stopped; `sample()` takes one at once."""

    def __init__(self, base_url: str, metrics_path: str, processes: EngineProcesses,
                 gpu: NvmlReader | None = None, rapl: RaplReader | None = None, interval_s: float = 1.0) -> None:
        self.metrics_url = base_url.rstrip("/") + metrics_path
        self.processes = processes
        self.gpu = gpu
        self.rapl = rapl
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.metrics_error: str | None = None  # why /metrics could not be read, once it could not
        self._client: httpx.AsyncClient | None = None
        self._metrics_on = True
        self._t0 = time.perf_counter()

    async def __aenter__(self) -> "Sampler":
        self._client = httpx.AsyncClient(timeout=2.0, trust_env=False)
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
            self._metrics_on = response.status_code >= 500  # a 404 will not change: stop asking
            return {}
        try:
            return parse_metrics(response.text)
        except ValueError as exc:
            self.metrics_error = f"{self.metrics_url}: not Prometheus text ({exc})"
            self._metrics_on = False
            return {}
