"""`paretoserve serve` as a child process, for code that measures replicas (the sweep): one URL, all pids.

    with ReplicaServer(ReplicaPlan(replicas=2, max_batch=8, threads_per_replica=1)) as server:
        server.wait_healthy(300)
        ... drive load at server.base_url; sample server.pids ...

The router and its supervisor run in their own process, so relaying costs the caller's process
(often a load generator) nothing; stopping it stops every replica, and so does the caller's death.
"""

from __future__ import annotations

import sys
from pathlib import Path

from paretoserve.engine_process import EngineProcess, HealthProbe, LaunchError, describe_exit, free_port, wait_until
from paretoserve.serve.config import ReplicaPlan
from paretoserve.serve.pinning import pinned_cmd


def serve_argv(plan: ReplicaPlan, port: int, log_dir: Path | None = None) -> list[str]:
    """The `paretoserve serve` command line that runs `plan` with the router on `port`."""
    argv = [sys.executable, "-m", "paretoserve", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--replicas", str(plan.replicas), "--max-batch", str(plan.max_batch),
            "--threads-per-replica", str(plan.threads_per_replica), "--model", plan.model,
            "--mem-fraction", str(plan.mem_fraction), "--health-path", plan.health_path,
            "--metrics-path", plan.metrics_path, "--health-timeout", str(plan.health_timeout_s)]
    for flag, value in (("--kv-tokens", plan.kv_tokens), ("--ctx-per-seq", plan.ctx_per_seq),
                        ("--engine-cmd", plan.engine_cmd), ("--log-dir", log_dir)):
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


class ReplicaServer:
    """The plan's replicas behind one router, in a child process group; a sync context manager."""

    def __init__(self, plan: ReplicaPlan, log_path: Path | None = None, log_dir: Path | None = None,
                 port: int | None = None) -> None:
        self.plan = plan
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Not pinned, but killed by the kernel should the caller die without stopping it (its replicas follow).
        self.process = EngineProcess(pinned_cmd(serve_argv(plan, self.port, log_dir), None), self.base_url,
                                     "/health", log_path=log_path)
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
        last: dict | None = None

        def all_healthy() -> bool:
            nonlocal last
            last = probe.json() or last
            return last is not None and last.get("healthy_replicas") == self.plan.replicas

        with HealthProbe(self.base_url + "/health") as probe:
            if wait_until(all_healthy, timeout_s, self._raise_if_exited) and last is not None:
                self._note_pids(last)
                return
        states = "; ".join(f"replica {r.get('replica')}: {r.get('state')}"
                           + (f" ({r['last_error']})" if r.get("last_error") else "")
                           for r in (last or {}).get("replicas", []))
        raise LaunchError(f"{self.plan.replicas} replicas not all healthy after {timeout_s:.0f} s at {self.base_url}"
                          f"{': ' + states if states else ''}\n{self.process.output_tail()}")

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
        """How often the supervisor restarted a replica so far (0 when the router does not answer)."""
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
