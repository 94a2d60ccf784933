"""The router's /metrics: every replica's own metrics with a `replica` label, plus the router's counters.

Replica metrics are scraped when /metrics is read, so their names stay the engine's own
(`paretoserve_requests_running`, `vllm:num_requests_running`, ...): a reader that sums label sets,
like the bench sampler, sees the whole deployment as one engine. A router serving several models adds a
`model` label (the name it is served under) to every replica's metrics and to its own per-replica and
per-model counters; with one model the names and labels are what they always were.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.serve.backends import Backend, Balancer

# Router latency from request arrival to last byte: sub-millisecond refusals up to long generations.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)


class RouterMetrics:
    """The router's own counters and histogram, in a registry of its own; `by_model` adds their `model` label."""

    def __init__(self, backends: list[Backend], by_model: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        model = ["model"] if by_model else []
        self.requests = Counter("paretoserve_router_requests", "answers relayed or failed, by replica and status",
                                [*model, "replica", "code"], registry=self.registry)
        self.retries = Counter("paretoserve_router_retries", "requests sent again to another replica",
                               model, registry=self.registry)
        self.refused = Counter("paretoserve_router_refused", "requests the router answered itself, by reason",
                               ["reason"], registry=self.registry)
        self.client_refused = Counter("paretoserve_router_client_refused",
                                      "requests refused with a 429 for their client's limit, by client (an API key's "
                                      "digest prefix, or 'address') and limit (concurrency, rate)",
                                      ["client", "limit"], registry=self.registry)
        self.stream_errors = Counter("paretoserve_router_stream_errors",
                                     "streams cut off by a replica failing after their first bytes",
                                     [*model, "replica"], registry=self.registry)
        self.resumes = Counter("paretoserve_router_resumes", "greedy streams continued on another replica after "
                               "theirs failed", model, registry=self.registry)
        self.latency = Histogram("paretoserve_router_request_seconds",
                                 "generation requests, from arrival at the router to the last byte sent",
                                 [*model, "endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_ReplicaState(backends, [*model, "replica"]))
        # Children by metric and label values, looked up once each: .labels() formats and locks on every call.
        self._children: dict[tuple, Counter | Histogram] = {}

    def count(self, backend: Backend, status: int) -> None:
        self._child(self.requests, backend.labels, code=str(status)).inc()

    def retried(self, pool: Balancer) -> None:
        self._child(self.retries, pool.labels).inc()

    def resumed(self, pool: Balancer) -> None:
        self._child(self.resumes, pool.labels).inc()

    def stream_error(self, backend: Backend) -> None:
        self._child(self.stream_errors, backend.labels).inc()

    def observe(self, pool: Balancer, endpoint: str, started: float) -> None:
        self._child(self.latency, pool.labels, endpoint=endpoint).observe(time.perf_counter() - started)

    def _child(self, metric, labels: dict[str, str], **more: str):
        """The metric's child for these label values (the metric itself where it has no labels)."""
        key = (id(metric), *labels.values(), *more.values())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels, **more) if labels or more else metric
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReplicaState:
    """Gauges read at scrape time from the backends and their supervisor."""

    def __init__(self, backends: list[Backend], labels: list[str]) -> None:
        self.backends, self.labels = backends, labels

    def collect(self):
        healthy = GaugeMetricFamily("paretoserve_router_replica_healthy", "1 while the replica gets requests",
                                    labels=self.labels)
        outstanding = GaugeMetricFamily("paretoserve_router_replica_outstanding",
                                        "requests the router has in flight at the replica", labels=self.labels)
        restarts = GaugeMetricFamily("paretoserve_router_replica_restarts", "times the supervisor restarted it",
                                     labels=self.labels)
        now = time.monotonic()
        for b in self.backends:
            values = list(b.labels.values())
            healthy.add_metric(values, float(b.available(now)))
            outstanding.add_metric(values, float(b.outstanding))
            restarts.add_metric(values, float(getattr(b.replica, "restarts", 0)))  # a StaticReplica has none
        return [healthy, outstanding, restarts]


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self):
        return self.families


async def replica_metrics(backends: list[Backend], path: str, timeout_s: float = 5.0) -> bytes:
    """Every replica's metrics merged into one exposition, each sample labelled with its replica (and model)."""
    texts = await asyncio.gather(*(_fetch(b, path, timeout_s) for b in backends))
    return merged_metrics([(b.labels, text) for b, text in zip(backends, texts, strict=True) if text is not None])


def merged_metrics(texts: list[tuple[dict[str, str], str]]) -> bytes:
    """Prometheus texts, each with the labels of where it came from, merged into one exposition with those labels
    on every sample."""
    merged: dict[str, Metric] = {}
    for labels, text in texts:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            continue  # a replica with unreadable metrics must not hide the others'
        for family in families:
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type,
                                                         family.unit))
            into.samples.extend(s._replace(labels={**s.labels, **labels}) for s in family.samples)
    return generate_latest(_Families(list(merged.values())))  # anything with collect() will do


async def _fetch(backend: Backend, path: str, timeout_s: float) -> str | None:
    if backend.session is None or not backend.replica.healthy:
        return None
    try:
        async with backend.session.get(path, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            return await response.text() if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeDecodeError):
        return None
