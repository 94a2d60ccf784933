"""The router's /metrics: every replica's own metrics with a `replica` label, plus the router's counters.

Replica metrics are scraped when /metrics is read, so their names stay the engine's own
(`paretoserve_requests_running`, `vllm:num_requests_running`, ...): a reader that sums label sets,
like the bench sampler, sees the whole deployment as one engine.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.serve.backends import Backend

# Router latency from request arrival to last byte: sub-millisecond refusals up to long generations.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)


class RouterMetrics:
    """The router's own counters and histogram, in a registry of its own."""

    def __init__(self, backends: list[Backend]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("paretoserve_router_requests", "answers relayed or failed, by replica and status",
                                ["replica", "code"], registry=self.registry)
        self.retries = Counter("paretoserve_router_retries", "requests sent again to another replica",
                               registry=self.registry)
        self.refused = Counter("paretoserve_router_refused", "requests the router answered itself, by reason",
                               ["reason"], registry=self.registry)
        self.client_refused = Counter("paretoserve_router_client_refused",
                                      "requests refused with a 429 for their client's limit, by client (an API key's "
                                      "digest prefix, or 'address') and limit (concurrency, rate)",
                                      ["client", "limit"], registry=self.registry)
        self.stream_errors = Counter("paretoserve_router_stream_errors",
                                     "streams cut off by a replica failing after their first bytes", ["replica"],
                                     registry=self.registry)
        self.resumes = Counter("paretoserve_router_resumes", "greedy streams continued on another replica after "
                               "theirs failed", registry=self.registry)
        self.latency = Histogram("paretoserve_router_request_seconds",
                                 "generation requests, from arrival at the router to the last byte sent",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_ReplicaState(backends))
        # Children by label values, looked up once each: .labels() formats and locks on every call.
        self._counts: dict[tuple[str, int], Counter] = {}
        self._latencies: dict[str, Histogram] = {}

    def count(self, backend: Backend, status: int) -> None:
        child = self._counts.get((backend.label, status))
        if child is None:
            child = self._counts[backend.label, status] = self.requests.labels(backend.label, str(status))
        child.inc()

    def observe(self, endpoint: str, started: float) -> None:
        child = self._latencies.get(endpoint)
        if child is None:
            child = self._latencies[endpoint] = self.latency.labels(endpoint)
        child.observe(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReplicaState:
    """Gauges read at scrape time from the backends and their supervisor."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends

    def collect(self):
        healthy = GaugeMetricFamily("paretoserve_router_replica_healthy", "1 while the replica gets requests",
                                    labels=["replica"])
        outstanding = GaugeMetricFamily("paretoserve_router_replica_outstanding",
                                        "requests the router has in flight at the replica", labels=["replica"])
        restarts = GaugeMetricFamily("paretoserve_router_replica_restarts", "times the supervisor restarted it",
                                     labels=["replica"])
        now = time.monotonic()
        for b in self.backends:
            healthy.add_metric([b.label], float(b.available(now)))
            outstanding.add_metric([b.label], float(b.outstanding))
            restarts.add_metric([b.label], float(getattr(b.replica, "restarts", 0)))  # a StaticReplica has none
        return [healthy, outstanding, restarts]


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self):
        return self.families


async def replica_metrics(backends: list[Backend], path: str, timeout_s: float = 5.0) -> bytes:
    """Every replica's metrics merged into one exposition, each sample labelled with its replica."""
    texts = await asyncio.gather(*(_fetch(b, path, timeout_s) for b in backends))
    return labelled_metrics({b.label: text for b, text in zip(backends, texts, strict=True) if text is not None})


def labelled_metrics(texts: dict[str, str]) -> bytes:
    """Prometheus texts by replica label, merged into one exposition with a `replica` label on every sample."""
    merged: dict[str, Metric] = {}
    for label, text in texts.items():
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            continue  # a replica with unreadable metrics must not hide the others'
        for family in families:
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type,
                                                         family.unit))
            into.samples.extend(s._replace(labels={**s.labels, "replica": label}) for s in family.samples)
    return generate_latest(_Families(list(merged.values())))  # anything with collect() will do


async def _fetch(backend: Backend, path: str, timeout_s: float) -> str | None:
    if backend.session is None or not backend.replica.healthy:
        return None
    try:
        async with backend.session.get(path, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            return await response.text() if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeDecodeError):
        return None
