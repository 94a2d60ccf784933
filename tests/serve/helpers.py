"""Shared pieces of the serve tests: the fake engine's command, an in-process router, orphan checks, and HTTP
calls whose timeout only a hang reaches."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import psutil
import uvicorn

from paretoserve.engine_process import free_port
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.router import build_router
from tests.waiting import HANG_S, wait_until

FAKE = Path(__file__).parents[1] / "fakes" / "fake_engine.py"


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(url, timeout=HANG_S, **kwargs)


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=HANG_S, **kwargs)


def fake_cmd(*flags: str) -> str:
    """An --engine-cmd template that starts the fake engine with `flags`."""
    return " ".join([sys.executable, str(FAKE), "--port", "{port}", *flags])


@contextlib.contextmanager
def running_router(replicas: list | dict, **config) -> Iterator[str]:
    """The router over `replicas` (one model's list, or a list per served name), served by uvicorn in a thread of
    this process; yields its base URL."""
    port = free_port()
    with running_app(build_router(replicas, RouterConfig(port=port, **config)), port) as url:
        yield url


@contextlib.contextmanager
def running_app(app, port: int | None = None, **tls: str) -> Iterator[str]:
    """Any ASGI app, served by uvicorn in a thread of this process (under TLS with `ssl_keyfile` and
    `ssl_certfile`); yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           **tls))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the app serving", interval_s=0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def sent_and_left(url: str, path: str, body: dict) -> Iterator[None]:
    """POST `body` over a plain socket and never read the answer; leaving the block closes the connection, as a
    client does that gave up waiting."""
    address = urlsplit(url)
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n")
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(head.encode() + data)
        yield


def wait_gone(pids, timeout_s: float = HANG_S) -> list[int]:
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
