"""The workload run at each sweep point: `paretoserve bench` against the point's endpoint."""

from __future__ import annotations

import asyncio
import dataclasses

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.runner import BenchError, run_bench
from paretoserve.sweep.grid import PointConfig
from paretoserve.sweep.runner import Measure


def bench_measure(bench: BenchConfig, saturate: bool) -> Measure:
    """A Measure that runs `bench` at a point; with `saturate` (closed loop only) the concurrency becomes
    the point's cap x replicas, so the batch cap is what limits the batch."""
    # Every point gets at least one warm-up request: first-request costs of a fresh engine stay out.
    warm = dataclasses.replace(bench, warmup=max(bench.warmup, 1))

    def measure(point: PointConfig, base_url: str, pids: tuple[int, ...]) -> dict:
        cfg = dataclasses.replace(warm, url=base_url, engine_pids=pids)
        if bench.mode == "concurrency" and saturate:
            cfg = dataclasses.replace(cfg, concurrency=point.max_batch * point.replicas)
        try:
            result = asyncio.run(run_bench(cfg, keep_requests=False))
        except BenchError as exc:
            raise RuntimeError(str(exc)) from exc
        result["bench_config"] = result.pop("config", None)  # "config" of a point is its engine config
        return result
    return measure
