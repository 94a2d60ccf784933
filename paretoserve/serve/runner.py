"""`serve` in one process: the supervisor's replicas behind the router, until SIGTERM or Ctrl-C.

Shutdown order: the router stops accepting and lets in-flight requests finish (up to the drain
timeout), then every replica is stopped (SIGTERM, then SIGKILL), then the MPS daemon.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import uvicorn

from paretoserve.serve.config import ReplicaPlan, RouterConfig
from paretoserve.serve.router import build_router
from paretoserve.serve.supervisor import Supervisor

log = logging.getLogger("paretoserve.serve")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # uvicorn re-raises the SIGTERM it drained on; this unwinds to the replicas' stop


def serve(plan: ReplicaPlan, config: RouterConfig, log_dir: Path | None = None) -> int:
    """Run until SIGTERM or Ctrl-C; every replica is stopped before this returns. Returns the exit status."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    supervisor = Supervisor(plan, log_dir)
    try:
        supervisor.start()
        log.info("router on http://%s:%d: %d replica(s) x %d thread(s), max_batch %d%s", config.host, config.port,
                 plan.replicas, supervisor.threads_per_replica, plan.max_batch,
                 "" if plan.pin else " (not pinned)")
        app = build_router(supervisor.replicas, config, plan.metrics_path)
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                               access_log=False, timeout_graceful_shutdown=config.drain_timeout_s))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping %d replica(s)", plan.replicas)
        supervisor.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
