"""`serve` in one process: the supervisor's replicas behind the router, until SIGTERM or Ctrl-C.

Shutdown order: the router stops accepting and lets in-flight requests finish (up to the drain
timeout), then every replica is stopped (SIGTERM, then SIGKILL), then the MPS daemon.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
import signal
import threading
from pathlib import Path

import uvicorn

from paretoserve.engine_process import LaunchError
from paretoserve.serve.config import RouterConfig, ServeConfig
from paretoserve.serve.router import build_router
from paretoserve.serve.supervisor import Supervisor

log = logging.getLogger("paretoserve.serve")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # uvicorn re-raises the SIGTERM it drained on; this unwinds to the replicas' stop


def _announce(supervisor: Supervisor, config: RouterConfig, timeout_s: float) -> None:
    """Say once when every replica is up, or which are not after the health timeout."""
    try:
        supervisor.wait_healthy(timeout_s)
        log.info("all %d replica(s) healthy: serving on %s://%s:%d", len(supervisor.replicas), config.scheme,
                 config.host, config.port)
    except LaunchError as exc:
        log.warning("%s; serving with the healthy ones", exc)


def with_replica_key(plan: ServeConfig, config: RouterConfig) -> tuple[ServeConfig, RouterConfig]:
    """A key of the router's own for replicas that take one, made here and shown to nobody: a client's key
    never reaches a replica, and a replica port found on this machine serves nobody but the router."""
    if not plan.takes_api_key:
        return plan, config
    key = secrets.token_urlsafe(32)
    return dataclasses.replace(plan, api_key=key), dataclasses.replace(config, replica_key=key)


def serve(plan: ServeConfig, config: RouterConfig, log_dir: Path | None = None) -> int:
    """Run until SIGTERM or Ctrl-C; every replica is stopped before this returns. Returns the exit status."""
    plan, config = with_replica_key(plan, config)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    supervisor = Supervisor(plan, log_dir)
    try:
        supervisor.start()
        log.info("router on %s://%s:%d: %d replica(s) x %d thread(s), max_batch %d%s", config.scheme, config.host,
                 config.port, plan.replicas, supervisor.threads_per_replica, plan.max_batch,
                 "" if plan.pin else " (not pinned)")
        threading.Thread(target=_announce, args=(supervisor, config, plan.health_timeout_s), daemon=True).start()
        app = build_router(supervisor.replicas, config, plan.metrics_path)
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                               access_log=False, ssl_keyfile=config.ssl_keyfile,
                                               ssl_certfile=config.ssl_certfile,
                                               timeout_graceful_shutdown=math.ceil(config.drain_timeout_s)))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping %d replica(s)", plan.replicas)
        supervisor.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
