"""`paretoserve serve` as a child process, for code that measures replicas (the sweep): one URL, all pids.

    with ReplicaServer(ServeConfig(replicas=2, max_batch=8, threads_per_replica=1)) as server:
        server.wait_healthy(300)
        ... drive load at server.base_url; sample server.pids ...

Given several plans (one per model, each a `ServeConfig` of its model), the child serves every model behind one
router, which routes each request by its `model`.

The router and its supervisor run in their own process, so relaying costs the caller's process
(often a load generator) nothing; stopping it stops every replica, and so does the caller's death.
With `backend="ray"` the child is `serve --backend ray`: the same URL is Ray Serve's proxy, and the pids
are the child's, its Ray proxy's and its Ray replicas' (with their engines).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from paretoserve.engine_process import EngineProcess, HealthProbe, LaunchError, describe_exit, free_port, wait_until
from paretoserve.openai_api.auth import ENV_VAR
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.pinning import pinned_cmd

RAY_READY = "Ray Serve on http://"  # what `serve --backend ray` logs once every replica is up
RAY_PROCESSES = ("ray::ServeReplica", "ray::ProxyActor")  # what serves the requests (the router's counterpart)


# What each model's plan may set for itself: `serve` takes one value per model for these (comma lists).
PER_MODEL = ("replicas", "max_batch", "threads_per_replica", "kv_tokens", "ctx_per_seq", "mem_fraction")


def serve_argv(plan: ServeConfig | Sequence[ServeConfig], port: int, log_dir: Path | None = None,
               backend: str = "router") -> list[str]:
    """The `paretoserve serve` command line that runs `plan` (or one plan per model) with the router (or Ray's
    proxy) on `port`."""
    plans = [plan] if isinstance(plan, ServeConfig) else list(plan)
    if backend != "router" and len(plans) > 1:
        raise PlanError(f"several models are served by the router backend only, not {backend}")
    argv = _serve_argv(plans, port, None if backend == "ray" else log_dir)
    return argv if backend == "router" else [*argv, "--backend", backend]


def _serve_argv(plans: list[ServeConfig], port: int, log_dir: Path | None = None) -> list[str]:
    plan = plans[0]
    differ = [p.model for p in plans[1:] if dataclasses.replace(p, model=plan.model, api_key=plan.api_key,
                                                                **{f: getattr(plan, f) for f in PER_MODEL}) != plan]
    if differ:
        raise PlanError(f"the plans of {', '.join(differ)} differ from the first in more than {', '.join(PER_MODEL)}")
    argv = [sys.executable, "-m", "paretoserve", "serve", "--host", "127.0.0.1", "--port", str(port),
            *_each(plans, ("replicas", "max_batch", "threads_per_replica", "mem_fraction")),
            *(arg for p in plans for arg in ("--model", p.model)),
            "--health-path", plan.health_path,
            "--metrics-path", plan.metrics_path, "--health-timeout", str(plan.health_timeout_s),
            *_each(plans, ("kv_tokens", "ctx_per_seq"))]
    for flag, value in (("--engine-cmd", plan.engine_cmd), ("--log-dir", log_dir)):
        if value is not None:
            argv += [flag, str(value)]
    if plan.repack != "auto":
        argv += ["--repack", plan.repack]
    if plan.engine != "embedded":
        argv += ["--engine", plan.engine]
    if not plan.pin:
        argv.append("--no-pin")
    if plan.mps:
        argv.append("--mps")
    return argv


def _each(plans: list[ServeConfig], names: tuple[str, ...]) -> list[str]:
    """The flags of these plan fields, each with one value per model (comma-separated); a field none sets is left
    to serve's default."""
    argv: list[str] = []
    for name in names:
        values = [getattr(p, name) for p in plans]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise PlanError(f"{name} is given for some models only: give it for every model or none")
        argv += ["--" + name.replace("_", "-"), ",".join(map(str, values))]
    return argv


class ReplicaServer:
    """The plan's replicas (or every model's, given one plan per model) behind one router, in a child process
    group; a sync context manager."""

    def __init__(self, plan: ServeConfig | Sequence[ServeConfig], log_path: Path | None = None,
                 log_dir: Path | None = None, port: int | None = None, backend: str = "router",
                 api_key: str | None = None) -> None:
        self.plans = [plan] if isinstance(plan, ServeConfig) else list(plan)
        self.plan, self.backend = self.plans[0], backend
        self.replica_count = sum(p.replicas for p in self.plans)  # of every model
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Not pinned, but killed by the kernel should the caller die without stopping it (its replicas follow).
        # The clients' key reaches `serve` in its environment, never on its command line (`ps` shows that).
        env = {ENV_VAR: api_key} if api_key is not None else None
        self.process = EngineProcess(pinned_cmd(serve_argv(plan, self.port, log_dir, backend), None), self.base_url,
                                     "/health", log_path=log_path, env=env)
        self.replica_pids: tuple[int, ...] = ()

    @property
    def pid(self) -> int | None:
        """The router's process (the replicas are its children)."""
        return next(iter(self.process.pids), None)

    @property
    def pids(self) -> tuple[int, ...]:
        """The router's pid and the replicas' pids as of the last `wait_healthy` or `refresh`."""
        return (self.pid, *self.replica_pids) if self.pid is not None else ()

    def start(self) -> "ReplicaServer":
        self.process.start()
        return self

    def wait_healthy(self, timeout_s: float = 300.0) -> None:
        """Block until every replica is healthy; LaunchError (with the replicas' states) on exit or timeout."""
        if self.backend == "ray":
            self._wait_ray(timeout_s)
            return
        last: dict | None = None

        def all_healthy() -> bool:
            nonlocal last
            last = probe.json() or last
            return last is not None and last.get("healthy_replicas") == self.replica_count

        with HealthProbe(self.base_url + "/health") as probe:
            if wait_until(all_healthy, timeout_s, self._raise_if_exited) and last is not None:
                self._note_pids(last)
                return
        states = "; ".join(f"replica {r.get('replica')}: {r.get('state')}"
                           + (f" ({r['last_error']})" if r.get("last_error") else "")
                           for r in (last or {}).get("replicas", []))
        raise LaunchError(f"{self.replica_count} replicas not all healthy after {timeout_s:.0f} s at {self.base_url}"
                          f"{': ' + states if states else ''}\n{self.process.output_tail()}")

    def _wait_ray(self, timeout_s: float) -> None:
        """Ray's side: serve says every replica is up (serve.run returned), and /health answers through the proxy."""
        with HealthProbe(self.base_url + "/health") as probe:
            if wait_until(lambda: RAY_READY in self.process.output_tail(64000, 2000) and probe.ok(), timeout_s,
                          self._raise_if_exited):
                self.replica_pids = _ray_pids(self.process.child.pid)
                return
        raise LaunchError(f"Ray Serve not up after {timeout_s:.0f} s at {self.base_url}\n{self.process.output_tail()}")

    def _raise_if_exited(self) -> None:
        if self.process.child.poll() is not None:
            raise LaunchError(f"serve {describe_exit(self.process.child.returncode)} before its "
                              f"replicas were healthy:\n{self.process.output_tail()}")

    def refresh(self) -> dict | None:
        """The router's /health JSON now (None when it does not answer); updates `replica_pids`."""
        with HealthProbe(self.base_url + "/health") as probe:
            health = probe.json()
        if health is not None:
            self._note_pids(health)
        return health

    def _note_pids(self, health: dict) -> None:
        self.replica_pids = tuple(r["pid"] for r in health["replicas"] if r.get("pid"))

    def exit_status(self) -> int | None:
        """The router process's exit status once it has ended; None while it runs."""
        return self.process.exit_status()

    def restarts(self) -> int:
        """How often the supervisor restarted a replica so far (0 when the router does not answer); on Ray, how many
        of the processes found at start-up are gone (Ray replaced them)."""
        if self.backend == "ray":
            return sum(not psutil.pid_exists(pid) for pid in self.replica_pids)
        health = self.refresh() or {}
        return sum(r.get("restarts", 0) for r in health.get("replicas", []))

    def output_tail(self, n_bytes: int = 4000) -> str:
        return self.process.output_tail(n_bytes)

    def stop(self, grace_s: float = 60.0) -> int | None:
        """SIGTERM the router (it drains, then stops its replicas); SIGKILL after `grace_s`. Returns its status."""
        return self.process.stop(grace_s)

    def __enter__(self) -> "ReplicaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _ray_pids(pid: int) -> tuple[int, ...]:
    """The Ray replicas and proxy started under `pid` (a local Ray instance), and what the replicas started."""
    found: list[int] = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if any(name in " ".join(process.cmdline()) for name in RAY_PROCESSES):
                found += [process.pid, *(c.pid for c in process.children(recursive=True))]
        except psutil.Error:  # a short-lived helper that ended meanwhile
            continue
    return tuple(dict.fromkeys(found))
