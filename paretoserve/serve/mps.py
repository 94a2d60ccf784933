"""The CUDA MPS control daemon, started before the replicas and stopped after them (`serve --mps`).

MPS lets the replicas' kernels share the GPU at once instead of time-slicing it. The daemon gets
its own pipe and log directories, so it neither needs root nor meets another user's daemon; the
replicas find it through the same CUDA_MPS_* variables in their environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from paretoserve.serve.config import PlanError

CONTROL = "nvidia-cuda-mps-control"


class MpsDaemon:
    """`nvidia-cuda-mps-control -d` on start, `quit` on its stdin on stop: start() and stop()."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._dir: tempfile.TemporaryDirectory | None = None
        self.env: dict[str, str] = {}  # what every MPS client (replica) needs in its environment

    def start(self) -> "MpsDaemon":
        control = shutil.which(CONTROL)
        if control is None:
            raise PlanError(f"--mps needs {CONTROL} on PATH (it ships with the NVIDIA driver); none found")
        self._dir = tempfile.TemporaryDirectory(prefix="paretoserve-mps-")
        pipe, logs = Path(self._dir.name) / "pipe", Path(self._dir.name) / "log"
        pipe.mkdir()
        logs.mkdir()
        self.env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(logs)}
        done = self._control(["-d"], None)
        if done.returncode != 0:
            self._dir.cleanup()
            raise PlanError(f"--mps: {CONTROL} -d failed with status {done.returncode}: {done.stdout.strip()}")
        return self

    def stop(self) -> None:
        """Ask the daemon to quit; idempotent."""
        if self._dir is None:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # a daemon already gone needs no quit
            self._control([], "quit\n")
        self._dir.cleanup()
        self._dir = None

    def _control(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess:
        return subprocess.run([CONTROL, *args], input=stdin, text=True, capture_output=True,
                              timeout=self.timeout_s, env={**os.environ, **self.env})
