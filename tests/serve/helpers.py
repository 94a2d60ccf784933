"""Shared pieces of the serve tests: the fake engine's command, an in-process router, orphan checks."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import uvicorn

from paretoserve.engine_process import free_port
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.router import build_router

FAKE = Path(__file__).parents[1] / "fakes" / "fake_engine.py"


def fake_cmd(*flags: str) -> str:
    """An --engine-cmd template that starts the fake engine with `flags`."""
    return " ".join([sys.executable, str(FAKE), "--port", "{port}", *flags])


@contextlib.contextmanager
def running_router(replicas: list, **config) -> Iterator[str]:
    """The router over `replicas`, served by uvicorn in a thread of this process; yields its base URL."""
    port = free_port()
    with running_app(build_router(replicas, RouterConfig(port=port, **config)), port) as url:
        yield url


@contextlib.contextmanager
def running_app(app, port: int | None = None) -> Iterator[str]:
    """Any ASGI app, served by uvicorn in a thread of this process; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_gone(pids, timeout_s: float = 10.0) -> list[int]:
    """The pids among `pids` still alive (zombies count as gone) after waiting up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in pids if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
