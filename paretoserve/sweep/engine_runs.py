"""How a sweep measures a point on real engines: start the point's engine (or `serve` plan), wait for health, run
the workload (`paretoserve bench`) against it, stop it.

The engine is stopped in every case (a finished point, a failed point, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterator

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.runner import BenchError, run_bench
from paretoserve.engine_process import EngineProcess, LaunchError, describe_exit, free_port
from paretoserve.presets import preset
from paretoserve.results.setup import ReplicaSetup
from paretoserve.serve.replica_server import ReplicaServer
from paretoserve.sweep.bench_runs import LiveRuns
from paretoserve.sweep.environment import collect_environment
from paretoserve.sweep.grid import SweepSpec

# (point, base_url, engine pids) -> summary fields of one workload run against that endpoint.
RunWorkload = Callable[[ReplicaSetup, str, tuple[int, ...]], dict]


def bench_workload(bench: BenchConfig, saturate: bool, api_key: str | None = None) -> RunWorkload:
    """Run `bench` at a point, sending `api_key` with every request; with `saturate` (closed loop only) the
    concurrency becomes the point's cap x replicas, so the batch cap is what limits the batch."""
    # Every point gets at least one warm-up request: first-request costs of a fresh engine stay out.
    warm = dataclasses.replace(bench, warmup=max(bench.warmup, 1),
                               access=dataclasses.replace(bench.access, api_key=api_key))

    def run(point: ReplicaSetup, base_url: str, pids: tuple[int, ...]) -> dict:
        cfg = dataclasses.replace(warm, url=base_url, engine_pids=pids)
        if bench.mode == "concurrency" and saturate:
            cfg = dataclasses.replace(cfg, concurrency=point.max_batch * point.replicas)
        try:
            result = asyncio.run(run_bench(cfg, keep_requests=False))
        except BenchError as exc:
            raise RuntimeError(str(exc)) from exc
        result["bench_config"] = result.pop("config", None)  # "config" of a point is its engine config
        return result
    return run


@dataclasses.dataclass(frozen=True)
class EngineRuns:
    """Each point on a freshly started engine, measured by `workload`; engines that take an API key are started
    with `api_key` (the session's own, which `workload` must send)."""

    workload: RunWorkload
    api_key: str | None = dataclasses.field(default=None, repr=False)

    def prepare(self, spec: SweepSpec) -> None:
        """Check that the preset's engine is installed and build or export its model once, before the first
        start (an engine that is not installed is one line before the sweep starts)."""
        if spec.engine_cmd is None:
            preset(spec.engine).check()
            preset(spec.engine).prepare(spec.model, None)

    def environment(self) -> dict:
        """The machine the engines run on: this one."""
        return collect_environment()

    def run(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> dict:
        """Measure one configuration; a failure becomes a record with status 'failed' and its reason.

        One replica is measured straight at its engine; several through `paretoserve serve`'s router,
        as they would be served; with the ray backend every point through Ray Serve's proxy.
        """
        record = {"key": point.key(), "config": point.as_dict(), "started_at": time.time()}
        started = time.perf_counter()
        try:
            with _start(spec, point, log_path, self.api_key) as engines:
                engines.wait_healthy(spec.health_timeout_s)
                summary = self.workload(point, engines.base_url, engines.pids)
                if (status := engines.exit_status()) is not None:
                    raise LaunchError(f"the engine {describe_exit(status)} during the run:\n"
                                      f"{engines.output_tail(1500)}")
                if engines.restarts():
                    raise LaunchError(f"a replica failed and was restarted during the run, so the figures mix "
                                      f"in a restart:\n{engines.output_tail(1500)}")
            record.update(status="ok", **summary)
        except LaunchError as exc:
            record.update(status="failed", reason=str(exc))
        except (OSError, ValueError, RuntimeError) as exc:  # the workload itself could not run
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        record["wall_s"] = time.perf_counter() - started
        return record


    @contextlib.contextmanager
    def serving(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> Iterator[LiveRuns]:
        """`point` started as a sweep starts it and healthy; bench runs go to it with this session's key."""
        with _start(spec, point, log_path, self.api_key) as engines:
            engines.wait_healthy(spec.health_timeout_s)
            yield LiveRuns(engines.base_url, self.api_key)


def _start(spec: SweepSpec, point: ReplicaSetup, log_path: Path, api_key: str | None) -> EngineProcess | ReplicaServer:
    if point.replicas > 1 or spec.backend == "ray":  # the router (or Ray's proxy) checks the key
        return ReplicaServer(spec.plan(point), log_path=log_path, log_dir=log_path.parent / point.key(),
                             backend=spec.backend, api_key=api_key)
    port, plan = free_port(), dataclasses.replace(spec.plan(point), api_key=api_key)
    return EngineProcess(plan.command(0, port, point.threads), f"http://127.0.0.1:{port}", spec.health_path,
                         log_path=log_path, env=plan.env)
