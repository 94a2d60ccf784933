"""`serve` in one process: the supervisor's replicas (one model's, or several models' in a Fleet) behind the
router, until SIGTERM or Ctrl-C.

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
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from paretoserve.engine_process import LaunchError
from paretoserve.serve.config import RouterConfig, ServeConfig
from paretoserve.serve.fleet import Fleet, ServedModel
from paretoserve.serve.router import build_router
from paretoserve.serve.supervisor import Supervisor

log = logging.getLogger("paretoserve.serve")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # uvicorn re-raises the SIGTERM it drained on; this unwinds to the replicas' stop


def _announce(replicas: Supervisor | Fleet, count: int, config: RouterConfig, timeout_s: float) -> None:
    """Say once when every replica is up, or which are not after the health timeout."""
    try:
        replicas.wait_healthy(timeout_s)
        log.info("all %d replica(s) healthy: serving on %s://%s:%d", count, config.scheme, config.host, config.port)
    except LaunchError as exc:
        log.warning("%s; serving with the healthy ones", exc)


def with_replica_key(plan: ServeConfig, config: RouterConfig) -> tuple[ServeConfig, RouterConfig]:
    """A key of the router's own for replicas that take one, made here and shown to nobody: a client's key
    never reaches a replica, and a replica port found on this machine serves nobody but the router."""
    (plan,), config = with_replica_keys([plan], config)
    return plan, config


def with_replica_keys(plans: list[ServeConfig], config: RouterConfig) -> tuple[list[ServeConfig], RouterConfig]:
    """`with_replica_key` for several models' plans: one key for every replica that takes one, since the router
    sends one."""
    if not any(plan.takes_api_key for plan in plans):
        return plans, config
    key = secrets.token_urlsafe(32)
    return ([dataclasses.replace(plan, api_key=key) if plan.takes_api_key else plan for plan in plans],
            dataclasses.replace(config, replica_key=key))


def serve(plan: ServeConfig, config: RouterConfig, log_dir: Path | None = None) -> int:
    """Run one model's replicas behind the router until SIGTERM or Ctrl-C; every replica is stopped before this
    returns. Returns the exit status."""
    plan, config = with_replica_key(plan, config)
    supervisor = Supervisor(plan, log_dir)

    def started() -> Starlette:
        supervisor.start()
        log.info("router on %s://%s:%d: %d replica(s) x %d thread(s), max_batch %d%s", config.scheme, config.host,
                 config.port, plan.replicas, supervisor.threads_per_replica, plan.max_batch,
                 "" if plan.pin else " (not pinned)")
        return build_router(supervisor.replicas, config, plan.metrics_path)

    return _run(started, supervisor, plan.replicas, config, plan.health_timeout_s)


def serve_models(models: list[ServedModel], config: RouterConfig, log_dir: Path | None = None) -> int:
    """Run several models' replicas behind one router, which routes each request by its `model`, until SIGTERM or
    Ctrl-C; every replica is stopped before this returns. Returns the exit status."""
    plans, config = with_replica_keys([m.plan for m in models], config)
    models = [dataclasses.replace(m, plan=plan) for m, plan in zip(models, plans, strict=True)]
    fleet = Fleet(models, log_dir)

    def started() -> Starlette:
        fleet.start()
        log.info("router on %s://%s:%d: %d models", config.scheme, config.host, config.port, len(models))
        for model, supervisor in zip(models, fleet.supervisors, strict=True):
            log.info("model %s: %d replica(s) x %d thread(s), max_batch %d%s", model.name, model.plan.replicas,
                     supervisor.threads_per_replica, model.plan.max_batch, "" if model.plan.pin else " (not pinned)")
        return build_router(fleet.replicas, config, models[0].plan.metrics_path)

    replicas = sum(m.plan.replicas for m in models)
    return _run(started, fleet, replicas, config, max(m.plan.health_timeout_s for m in models))


def _run(started: Callable[[], Starlette], replicas: Supervisor | Fleet, count: int, config: RouterConfig,
         health_timeout_s: float) -> int:
    """Start the replicas and the router (`started`), serve until SIGTERM or Ctrl-C, then stop every replica."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        app = started()
        threading.Thread(target=_announce, args=(replicas, count, config, health_timeout_s), daemon=True).start()
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                               access_log=False, ssl_keyfile=config.ssl_keyfile,
                                               ssl_certfile=config.ssl_certfile,
                                               timeout_graceful_shutdown=math.ceil(config.drain_timeout_s)))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping %d replica(s)", count)
        replicas.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
