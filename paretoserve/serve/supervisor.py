"""N engine replicas on this machine: pinned, health-checked, restarted with backoff, stopped without orphans.

Each replica has its own thread that starts its engine, probes its health endpoint, and restarts it
when it exits, stops answering or never becomes healthy. The thread that started a replica is the
one that stops it, so the kernel's parent-death signal (see exec_pinned.py) never fires early.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from paretoserve.engine_process import (
    EngineProcess,
    HealthProbe,
    LaunchError,
    describe_exit,
    ended_itself,
    free_port,
    wait_until,
)
from paretoserve.serve.config import ServeConfig
from paretoserve.serve.lifecycle import StartStop
from paretoserve.serve.mps import MpsDaemon
from paretoserve.serve.pinning import assign_cores, pinned_cmd, threads_for, usable_cores

log = logging.getLogger("paretoserve.serve")

STABLE_S = 60.0  # a replica healthy this long before it failed restarts after the shortest backoff again


class Replica:
    """One engine process and what the router and /health need to know about it."""

    def __init__(self, index: int, port: int, cmd: list[str], cores: tuple[int, ...] | None,
                 plan: ServeConfig, log_path: Path | None, env: dict[str, str]) -> None:
        self.index, self.port, self.cores = index, port, cores
        self.url = f"http://127.0.0.1:{port}"
        self.cmd, self.plan, self.log_path, self.env = cmd, plan, log_path, env
        self.state = "starting"  # starting | healthy | restarting | stopped
        self.healthy = False  # read by the router on every request
        self.restarts = 0
        self.last_error: str | None = None
        self.process: EngineProcess | None = None

    @property
    def pid(self) -> int | None:
        proc = self.process.proc if self.process is not None else None
        return proc.pid if proc is not None and proc.poll() is None else None

    def status(self) -> dict:
        """What /health reports about this replica."""
        return {"replica": self.index, "url": self.url, "pid": self.pid, "state": self.state,
                "healthy": self.healthy, "restarts": self.restarts, "cores": list(self.cores or ()),
                "last_error": self.last_error}

    def run(self, stop: threading.Event) -> None:
        """Keep the replica running until `stop` is set; then stop it (SIGTERM, then SIGKILL)."""
        try:
            self._keep_running(stop)
        except Exception as exc:  # e.g. no file descriptors left: report it instead of dying silently
            self.last_error = f"supervision failed: {type(exc).__name__}: {exc}"
            log.error("replica %d: %s", self.index, self.last_error)
        finally:
            self.healthy = False
            if self.process is not None:
                self.process.stop(self.plan.stop_grace_s)
            self.state = "stopped"

    def _keep_running(self, stop: threading.Event) -> None:
        first, longest = self.plan.restart_backoff_s
        backoff = first
        while not stop.is_set():
            self.state, started = "starting", time.monotonic()
            process = self.process = EngineProcess(pinned_cmd(self.cmd, self.cores), self.url,
                                                   self.plan.health_path, log_path=self.log_path, env=self.env).start()
            log.info("replica %d: started pid %d on %s (cores %s)", self.index, process.child.pid, self.url,
                     ",".join(map(str, self.cores)) if self.cores else "any")
            reason, healthy_for = self._watch(stop, started, process)
            self.healthy = False
            process.stop(self.plan.stop_grace_s)
            if stop.is_set():
                break
            self.last_error = reason
            backoff = first if healthy_for >= STABLE_S else backoff
            log.warning("replica %d: %s; restarting in %.1f s", self.index, reason, backoff)
            self.state = "restarting"
            if stop.wait(backoff):
                break
            backoff = min(2 * backoff, longest)
            self.restarts += 1

    def _watch(self, stop: threading.Event, started: float, process: EngineProcess) -> tuple[str, float]:
        """Probe until the replica fails; returns why, and how long it had been healthy (s)."""
        plan, failures, healthy_since = self.plan, 0, None
        with HealthProbe(self.url + plan.health_path, plan.health_check_timeout_s) as probe:
            while not stop.wait(plan.health_interval_s):
                proc = process.child
                if proc.poll() is not None:
                    return _ended(process, self.cmd), _since(healthy_since)
                if probe.ok():
                    failures = 0
                    if healthy_since is None:
                        healthy_since, self.healthy, self.state = time.monotonic(), True, "healthy"
                        log.info("replica %d: healthy after %.1f s", self.index, healthy_since - started)
                    continue
                if healthy_since is None:
                    if time.monotonic() - started > plan.health_timeout_s:
                        return f"not healthy {plan.health_timeout_s:g} s after its start", 0.0
                    continue
                failures += 1
                if failures >= plan.unhealthy_after:
                    return f"failed {failures} health checks in a row", _since(healthy_since)
        return "stopping", _since(healthy_since)


class Supervisor(StartStop):
    """Start the plan's replicas, keep them alive, stop them all; use as a context manager (sync).

    `cores` are those its replicas are pinned to (default: every core this process may use); its replicas are
    numbered from `first_index` (several models' supervisors number theirs one after another: serve/fleet.py).
    """

    def __init__(self, plan: ServeConfig, log_dir: Path | None = None, cores: list[int] | None = None,
                 first_index: int = 0) -> None:
        self.plan = plan
        self.log_dir = log_dir
        self.cores = cores
        self.first_index = first_index
        self.replicas: list[Replica] = []
        self.threads_per_replica = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._mps: MpsDaemon | None = None

    def start(self) -> "Supervisor":
        """Check the plan against this machine's cores, start MPS if asked, start every replica (not waiting)."""
        plan = self.plan
        cores = usable_cores() if self.cores is None else self.cores
        threads = threads_for(plan.replicas, plan.threads_per_replica, cores)
        assignment = assign_cores(plan.replicas, threads, cores) if plan.pin else [None] * plan.replicas
        self.threads_per_replica = threads
        env = {**plan.env, "OMP_NUM_THREADS": str(threads)}
        if plan.mps:
            self._mps = MpsDaemon().start()
            env.update(self._mps.env)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for index, replica_cores in enumerate(assignment, start=self.first_index):
            port = free_port()
            log_path = self.log_dir / f"replica-{index}.log" if self.log_dir is not None else None
            self.replicas.append(Replica(index, port, plan.command(index, port, threads), replica_cores, plan,
                                         log_path, env))
        for replica in self.replicas:
            thread = threading.Thread(target=replica.run, args=(self._stop,), name=f"replica-{replica.index}")
            thread.start()
            self._threads.append(thread)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        """Block until every replica is healthy; LaunchError with their states on timeout."""
        if not wait_until(lambda: all(r.healthy for r in self.replicas), timeout_s, interval_s=0.1):
            states = "; ".join(f"replica {r.index}: {r.state}" + (f" ({r.last_error})" if r.last_error else "")
                               for r in self.replicas)
            raise LaunchError(f"{len(self.replicas)} healthy replicas wanted, not reached after {timeout_s:.0f} s: "
                              f"{states}")

    @property
    def pids(self) -> tuple[int, ...]:
        """The replicas' engine processes now running."""
        return tuple(r.pid for r in self.replicas if r.pid is not None)

    def stop(self) -> None:
        """Stop every replica (each SIGTERM, then SIGKILL after the grace period) and the MPS daemon."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._mps is not None:
            self._mps.stop()
            self._mps = None



def _ended(process: EngineProcess, cmd: list[str]) -> str:
    """How a replica's engine ended: "killed by SIGKILL", or where it ended itself (an exit, a crash) that and the
    last line it wrote: "exited with status 1: RuntimeError: ...". A signal sent from outside leaves nothing in the
    log that says why, so no line from before it is quoted."""
    status = process.child.returncode
    how = describe_exit(status, cmd)
    last_line = process.output_tail(600, 1).strip() if ended_itself(status) else ""
    return f"{how}: {last_line}" if last_line else how


def _since(t: float | None) -> float:
    return 0.0 if t is None else time.monotonic() - t
