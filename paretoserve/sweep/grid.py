"""The sweep's grid: which engine configurations to run, and the command line that starts each."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from paretoserve.bench.repeats import REPEATS
from paretoserve.limits import UserError
from paretoserve.results.setup import ReplicaSetup
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.pinning import assign_cores, threads_for, usable_cores

BACKENDS = ("router", "ray")


class SweepSpecError(UserError):
    """A sweep flag outside its allowed range; the message names the flag."""


@dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep's points and how each engine is started."""

    model: str = "default"
    max_batch: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    kv_tokens: tuple[int | None, ...] = (None,)
    threads: tuple[int, ...] = (0,)
    replicas: tuple[int, ...] = (1,)
    ctx_per_seq: int | None = None  # longest prompt + output of the workload, for presets that take it
    engine: str = "embedded"  # the preset that starts each engine (paretoserve/presets), unless engine_cmd
    engine_cmd: str | None = None  # template for any other engine
    repack: str = "auto"  # llama.cpp engines: weight repacking (engine/repack.py)
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    health_timeout_s: float = 300.0
    repeats: int = 1  # runs of each point, round by round, each on a freshly started engine
    backend: str = "router"  # router: one replica measured straight at its engine, several behind our router;
    # ray: every point through Ray Serve's proxy (serve --backend ray)

    def __post_init__(self) -> None:
        REPEATS.check("--repeats", self.repeats, SweepSpecError)
        if self.backend not in BACKENDS:
            raise SweepSpecError(f"--backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.backend == "ray" and self.engine_cmd is not None:
            raise SweepSpecError("--backend ray runs the engine presets (--engine); --engine-cmd is for the router")
        for point in self.points():
            self.plan(point)  # checks the paths, the template and every value once, before any engine starts

    def points(self) -> list[ReplicaSetup]:
        """The full grid, smallest batch first."""
        return [ReplicaSetup(b, kv, t, r) for r, t, kv, b in
                itertools.product(self.replicas, self.threads, self.kv_tokens, self.max_batch)]

    def plan(self, point: ReplicaSetup) -> ServeConfig:
        """How `paretoserve serve` (or, for one replica, the sweep itself) starts the engines of `point`."""
        try:
            plan = ServeConfig(replicas=point.replicas, max_batch=point.max_batch, kv_tokens=point.kv_tokens,
                               ctx_per_seq=self.ctx_per_seq if self.engine_cmd is None else None,
                               threads_per_replica=point.threads, model=self.model, engine=self.engine,
                               engine_cmd=self.engine_cmd,
                               repack=self.repack,
                               health_path=self.health_path, metrics_path=self.metrics_path,
                               health_timeout_s=self.health_timeout_s)
            if plan.replicas > 1:  # each replica gets its own cores: refuse a plan that needs more than exist
                cores = usable_cores()
                assign_cores(plan.replicas, threads_for(plan.replicas, plan.threads_per_replica, cores), cores)
            return plan
        except PlanError as exc:
            raise SweepSpecError(str(exc)) from exc

    def command(self, point: ReplicaSetup, port: int) -> list[str]:
        """The argv that starts the single engine of a one-replica `point` listening on `port`."""
        return self.plan(point).command(0, port, point.threads)

    def as_dict(self) -> dict:
        """sweep.json's spec; `backend` only where it is not the router, so sweeps from before it still resume."""
        spec = asdict(self)
        if spec["backend"] == "router":
            del spec["backend"]
        return spec
