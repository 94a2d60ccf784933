"""Start an engine as a child process, wait until it is healthy, and stop it without leaving orphans.

`HealthProbe` and `wait_until` are the one health poller: EngineProcess, ReplicaServer (serve/replica_server.py)
and the supervisor's replicas (serve/supervisor.py) all probe through them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

import httpx

# Signals that mean the engine itself crashed, not that someone stopped it.
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
LOG_TAIL_LINES = 20
PROBE_TIMEOUT_S = 5.0  # one health probe; a busy CPU engine can answer slowly
POLL_INTERVAL_S = 0.2  # between probes while waiting for an engine to become healthy


class LaunchError(RuntimeError):
    """The engine exited or did not become healthy in time; the message carries its last output."""


def describe_exit(status: int, cmd: list[str] | None = None) -> str:
    """How a process ended, in words: "exited with status 3", or "killed by SIGSEGV: ..." with what to try.

    A negative status is a signal (subprocess's convention); for a crash of the embedded engine or of
    llama-server the text names the flag that turns llama.cpp's weight repacking off.
    """
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        return f"killed by signal {-status}"
    if name not in CRASH_SIGNALS:
        return f"killed by {name}"
    cmd = cmd or []
    if "paretoserve engine" in " ".join(cmd):
        return (f"killed by {name}: a crash inside llama.cpp; on a CPU with AMX try "
                "`--repack off` (llama.cpp issue 20824)")
    if any(Path(arg).name == "llama-server" for arg in cmd):
        return f"killed by {name}: a crash inside llama.cpp; on a CPU with AMX try llama-server's --no-repack"
    return f"killed by {name}: the engine crashed"


def ended_itself(status: int) -> bool:
    """Whether a process that ended with `status` ended itself (an exit, or a crash such as SIGSEGV), rather than
    by a signal someone sent it (SIGKILL, SIGTERM, ...): only then may the last lines it wrote say why."""
    if status >= 0:
        return True
    try:
        return signal.Signals(-status).name in CRASH_SIGNALS
    except ValueError:
        return False


class HealthProbe:
    """GET one health URL over one pooled connection; a context manager.

    The engines probed run on this machine, so proxy settings of the environment are ignored
    (trust_env=False), as bench's own clients ignore them."""

    def __init__(self, url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)

    def ok(self) -> bool:
        """Whether the URL answers 200 now."""
        try:
            return self._client.get(self.url).status_code == 200
        except httpx.HTTPError:
            return False

    def json(self) -> dict | None:
        """The answer's JSON object now, whatever its status; None when there is none."""
        try:
            body = self._client.get(self.url).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HealthProbe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_until(ready: Callable[[], bool], timeout_s: float, check: Callable[[], None] = lambda: None,
               interval_s: float = POLL_INTERVAL_S) -> bool:
    """Poll `ready` (at least once) until it is true or `timeout_s` has passed; returns whether it became true.
    `check` runs before each poll and raises when waiting is pointless (the process exited)."""
    deadline = time.monotonic() + timeout_s
    while True:
        check()
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def embedded_engine_cmd(port: int, host: str = "127.0.0.1", *engine_args: str) -> list[str]:
    """The command line of `paretoserve engine` run by this same Python."""
    return [sys.executable, "-m", "paretoserve", "engine", "--host", host, "--port", str(port), *engine_args]


class EngineProcess:
    """One engine process in its own process group; use as a context manager.

    The child gets its own session so that stopping it also stops anything it started, and its
    output goes to `log_path` (or a temporary file, never a pipe) so a chatty engine can never block.
    """

    def __init__(self, cmd: list[str], base_url: str, health_path: str = "/health",
                 log_path: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.cmd = cmd
        self.base_url = base_url.rstrip("/")
        self.health_path = health_path
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this run's output begins in a log file that earlier runs appended to
        self._stopped = False  # a second stop must not signal a process group that may have been reused

    @property
    def child(self) -> subprocess.Popen:
        """The engine's process; start() first."""
        if self.proc is None:
            raise RuntimeError("the engine process has not been started")
        return self.proc

    def start(self) -> "EngineProcess":
        # Open while the engine runs: stop() closes it.
        log = open(self.log_path, "a+b") if self.log_path is not None else tempfile.TemporaryFile()  # noqa: SIM115
        self._log, self._log_start = log, log.seek(0, os.SEEK_END)
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **(self.env or {})})
        return self

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Poll the health endpoint until it answers 200; raise LaunchError on exit or timeout."""
        with HealthProbe(self.base_url + self.health_path) as probe:
            if wait_until(probe.ok, timeout_s, self._raise_if_exited):
                return
        raise LaunchError(f"engine not healthy at {self.base_url}{self.health_path} after {timeout_s:.0f} s:\n"
                          f"{self.output_tail()}")

    def _raise_if_exited(self) -> None:
        if self.child.poll() is not None:
            raise LaunchError(f"engine {describe_exit(self.child.returncode, self.cmd)} before it was "
                              f"healthy; the last lines of its log:\n{self.output_tail()}")

    @property
    def pids(self) -> tuple[int, ...]:
        """The engine's process id, as a tuple like ReplicaServer.pids."""
        return (self.proc.pid,) if self.proc is not None else ()

    def restarts(self) -> int:
        """Always 0: one engine process is never restarted (ReplicaServer's replicas can be)."""
        return 0

    def exit_status(self) -> int | None:
        """The process's exit status once it has ended; None while it runs (or before it started)."""
        return self.proc.poll() if self.proc is not None else None

    def output_tail(self, n_bytes: int = 4000, n_lines: int = LOG_TAIL_LINES) -> str:
        """The last `n_lines` lines (at most `n_bytes`) this run wrote (a restarted replica's old tracebacks are not
        its own)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(self._log_start, size - n_bytes))
        return "\n".join(self._log.read().decode("utf-8", "replace").splitlines()[-n_lines:])

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL it after `grace_s`; returns the exit status."""
        if self.proc is None or self._stopped:
            return None if self.proc is None else self.proc.returncode
        self._stopped = True
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
        _signal_group(self.proc.pid, signal.SIGKILL)  # whatever the engine itself started
        self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> "EngineProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
