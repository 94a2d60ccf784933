"""`serve --backend ray`: the replica plan deployed on Ray Serve (serve/ray_replica.py), until SIGTERM or Ctrl-C.

Without an address it starts a Ray instance of its own on this machine (`ray.init(address="local")`, so it never
joins a cluster someone else started) and stops it at the end, Ray's processes with it. With `--ray-address` it
deploys on that cluster and, at the end, deletes its application and leaves the cluster running. One proxy, on
the head node, serves the OpenAI routes on --host:--port (127.0.0.1 unless told otherwise). Ray's usage
statistics are off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

import ray
from ray import serve

from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.pinning import assign_cores, threads_for, usable_cores
from paretoserve.serve.ray_replica import APP_NAME, RayPlan, build

log = logging.getLogger("paretoserve.serve")

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # never report usage statistics to Ray's servers
LOGGING = {"log_level": "WARNING", "enable_access_log": False}  # no log line per request in the replicas
GPU_ENGINES = ("vllm", "sglang")  # the presets that run on a GPU when the cluster has one


@dataclass(frozen=True)
class RayOptions:
    """Where and how the plan runs on Ray."""

    address: str | None = None  # None: a Ray instance of this run's own; else `auto` or ray://HOST:PORT
    max_queued_requests: int = RayPlan.max_queued_requests


def ray_plan(plan: ServeConfig, threads: int, num_gpus: float, options: RayOptions,
             keys: ApiKeys | None = None) -> RayPlan:
    """The plan as the deployment builder takes it; `keys` (the clients') as digests the deployment checks."""
    keys = keys or ApiKeys()
    if plan.engine_cmd is not None:
        raise PlanError("--backend ray runs the engine presets (--engine); --engine-cmd is for the router backend")
    if plan.mps:
        raise PlanError("--mps applies to the router backend: on Ray, start the MPS daemon on each GPU node")
    return RayPlan(replicas=plan.replicas, max_batch=plan.max_batch, threads_per_replica=threads,
                   kv_tokens=plan.kv_tokens, ctx_per_seq=plan.ctx_per_seq, model=plan.model, engine=plan.engine,
                   repack=plan.repack, pin=plan.pin, mem_fraction=plan.mem_fraction, num_gpus=num_gpus,
                   max_queued_requests=options.max_queued_requests, health_timeout_s=plan.health_timeout_s,
                   api_key_digests=tuple(d.hex() for d in keys.digests), keyed_metrics=keys.metrics)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds from wherever the main thread is, to the shutdown below


def start_ray(plan: ServeConfig, options: RayOptions) -> int:
    """Connect to the cluster, or start a local instance sized for the plan; returns each replica's threads."""
    os.environ.update(RAY_ENV)  # read by ray.init, and inherited by every Ray process it starts
    cores = usable_cores()
    threads = threads_for(plan.replicas, plan.threads_per_replica, cores)
    if options.address is None:
        if plan.pin:
            assign_cores(plan.replicas, threads, cores)  # the same refusal as the router backend's
        ray.init(address="local", num_cpus=max(len(cores), plan.replicas * threads), include_dashboard=False,
                 logging_level=logging.WARNING)
    else:
        ray.init(address=options.address, logging_level=logging.WARNING)
        have = ray.cluster_resources().get("CPU", 0)
        if have < plan.replicas * threads:
            log.warning("the cluster has %g CPUs, the plan asks %d (%d replicas x %d): some replicas wait for room",
                        have, plan.replicas * threads, plan.replicas, threads)
    return threads


def gpu_share(plan: ServeConfig) -> float:
    """Each replica's num_gpus: 1/N of a GPU for a GPU engine when the cluster has GPUs (memory is capped by the
    engine's own flag, from --mem-fraction or --kv-tokens), else 0."""
    if plan.engine not in GPU_ENGINES or ray.cluster_resources().get("GPU", 0) < 1:
        return 0.0
    return int(1000 / plan.replicas) / 1000


def serve_on_ray(plan: ServeConfig, config: RouterConfig, options: RayOptions) -> int:
    """Deploy, serve until SIGTERM or Ctrl-C, then take down what this run started. Returns the exit status."""
    started = time.monotonic()
    stop = threading.Event()
    status = 0
    previous = signal.getsignal(signal.SIGTERM)
    try:
        threads = start_ray(plan, options)
        signal.signal(signal.SIGTERM, _interrupt)  # after ray.init, whose own handler would abort the process
        app = build(ray_plan(plan, threads, gpu_share(plan), options, config.api_keys).args())
        # Cluster-wide options: on a cluster whose Serve already runs, its own HTTP options stay in force.
        serve.start(proxy_location="HeadOnly", http_options={"host": config.host, "port": config.port},
                    logging_config={"log_level": "WARNING"})
        serve.run(app, name=APP_NAME, route_prefix="/", logging_config=LOGGING)
        log.info("Ray Serve on http://%s:%d: %d replica(s) x %d CPU(s), max_ongoing_requests %d, up in %.1f s",
                 config.host, config.port, plan.replicas, threads, plan.max_batch, time.monotonic() - started)
        stop.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # serve.run: the deployment failed (a replica's constructor raised, repeatedly)
        log.error("Ray Serve could not start the plan: %s", exc)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        shutdown(options)
        signal.signal(signal.SIGTERM, previous)
    return status


def shutdown(options: RayOptions) -> None:
    """Delete the application (a cluster of someone else's keeps running) or stop Serve and the local Ray."""
    if not ray.is_initialized():
        return
    log.info("stopping Ray Serve%s", "" if options.address else " and the local Ray instance")
    try:
        if options.address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
