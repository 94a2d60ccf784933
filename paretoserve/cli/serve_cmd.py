"""`paretoserve serve`: N engine replicas on this machine behind a load-balancing OpenAI-compatible router, or
on Ray Serve (`--backend ray`: one deployment of N replicas behind Ray's proxy, on this machine or a cluster).
Several models (`--model` repeated): each model's replicas, on cores of their own, behind one router that routes
each request by its `model` (on Ray: one deployment per model behind an ingress that routes the same way)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from paretoserve.advise.advice_file import PLAN_FIELDS, read_plan
from paretoserve.cli import examples
from paretoserve.cli.access_args import add_access_args, api_keys, check_tls, warn_if_open
from paretoserve.cli.common import add_cache_dir_arg, add_engine_choice, add_repack_arg, bind_port
from paretoserve.engine.config import EngineConfig
from paretoserve.limits import IntRange
from paretoserve.model import DEFAULT_MODEL, PACKAGED_MODELS, SMOLLM2_MODEL
from paretoserve.presets import preset
from paretoserve.serve.config import PLACEHOLDERS, PlanError, RouterConfig, ServeConfig
from paretoserve.serve.fleet import served_models
from paretoserve.serve.runner import serve, serve_models
from paretoserve.tune.placement import read_placement

BACKENDS = ("router", "ray")
RAY_MAX_QUEUE = IntRange(1, 1 << 20)  # Ray's max_queued_requests: -1 (unbounded) or positive; we keep it bounded


def per_model(text: str) -> list[int]:
    """A replica-plan flag's value: one integer (every model) or a comma list of one per --model."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, or a comma list of one per --model; got {text!r}") \
            from None


def per_model_share(text: str) -> list[float]:
    """--mem-fraction's value: one share (every model) or a comma list of one per --model."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a share such as 0.4, or a comma list of one per --model; got "
                                         f"{text!r}") from None


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("serve", help=help, description=help,
                              epilog=examples("paretoserve serve --plan tune-out/advice.json --port 8000"))
    g = p.add_argument_group("replica plan (a flag wins over --plan; with several --model, a flag takes one value "
                             "for every model or a comma list of one per model, in --model's order)")
    g.add_argument("--plan", type=Path, action="append", default=None,
                   help="JSON from `paretoserve advise --json` (its replica_plan: replicas, max_batch, "
                        "threads_per_replica, kv_tokens); with several --model, one --plan per model, in order; "
                        "or, once, the placement.json of `tune --model A --model B` (its models and their plans)")
    g.add_argument("--replicas", type=per_model, default=None,
                   help=f"engine replicas (default: {ServeConfig.replicas})")
    g.add_argument("--max-batch", type=per_model, default=None,
                   help=f"batch cap of each replica (default: {ServeConfig.max_batch})")
    g.add_argument("--kv-tokens", type=per_model, default=None,
                   help="KV cache cells of each replica (default: engine's)")
    g.add_argument("--ctx-per-seq", type=per_model, default=None,
                   help="prompt + output per sequence (not --engine-cmd)")
    g.add_argument("--threads-per-replica", type=per_model, default=None,
                   help="threads (and pinned cores) of each replica; 0 = usable cores / replicas of every model "
                        f"(default: {ServeConfig.threads_per_replica})")
    g.add_argument("--no-pin", action="store_true", help="do not pin replicas to their own cores")
    e = p.add_argument_group("engine")
    e.add_argument("--model", action="append", default=None,
                   help="GGUF file (llama.cpp engines) or HF model directory (vllm, sglang), 'default' for the "
                        f"bundled Gemma 3 270M Q4_K_M, or '{SMOLLM2_MODEL}' for SmolLM2 135M (the smollm2 extra); "
                        "{model} of --engine-cmd. Repeat it to serve several models behind one router, which routes "
                        f"by each request's model (the engine presets, not --engine-cmd; default: {DEFAULT_MODEL})")
    add_cache_dir_arg(e)
    add_engine_choice(e)
    e.add_argument("--engine-cmd", default=None,
                   help="command template of any other engine, with " + " ".join("{" + n + "}" for n in PLACEHOLDERS))
    add_repack_arg(e)
    e.add_argument("--mem-fraction", type=per_model_share, default=None,
                   help="device memory all replicas of a model share (GPU engines); {mem_fraction} is this / replicas; "
                        "with several --model one share for each or a comma list of one per model (default: the "
                        f"--plan placement's share of each model, else {ServeConfig.mem_fraction})")
    e.add_argument("--mps", action="store_true", help="run the CUDA MPS daemon while the replicas run")
    e.add_argument("--health-path", default=ServeConfig.health_path,
                   help="replica readiness path (default: %(default)s)")
    e.add_argument("--metrics-path", default=ServeConfig.metrics_path,
                   help="replica Prometheus path (default: %(default)s)")
    e.add_argument("--health-timeout", type=float, default=ServeConfig.health_timeout_s,
                   help="seconds a replica may take to become healthy before it is restarted (default: %(default)g)")
    r = p.add_argument_group("router")
    r.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    r.add_argument("--port", type=int, default=8000, help="port to bind (default: %(default)s)")
    r.add_argument("--max-body-bytes", type=int, default=RouterConfig.max_body_bytes,
                   help="largest request body accepted (default: %(default)s)")
    r.add_argument("--drain-timeout", type=float, default=RouterConfig.drain_timeout_s,
                   help="on SIGTERM or Ctrl-C, seconds in-flight requests may take to finish (default: %(default)s)")
    add_access_args(r)
    r.add_argument("--max-concurrent-per-client", type=int, default=RouterConfig.max_concurrent_per_client,
                   metavar="N", help="generation requests each client (API key, else address) may have in flight; "
                                     "past it a 429 with Retry-After; 0 = no cap (default: %(default)s)")
    r.add_argument("--max-rate-per-client", type=float, default=RouterConfig.max_rate_per_client, metavar="R",
                   help="new generation requests per second each client may send (a burst of max(1, R) at once); "
                        "past it a 429 with Retry-After; 0 = no limit (default: %(default)g)")
    r.add_argument("--log-dir", type=Path, default=None, help="write each replica's output to DIR/replica-N.log")
    b = p.add_argument_group("backend")
    b.add_argument("--backend", choices=BACKENDS, default="router",
                   help="router: our router over replicas on this machine; ray: one Ray Serve deployment behind "
                        "Ray's proxy (the `ray` extra) (default: %(default)s)")
    b.add_argument("--ray-address", default=None,
                   help="with --backend ray: deploy on this cluster (auto, ray://HOST:PORT) and leave it running; "
                        "default: a Ray instance of this run's own, stopped at the end")
    b.add_argument("--max-queue", type=int, default=None,
                   help="with --backend ray: requests each Ray proxy queues for the replicas, past "
                        "max_ongoing_requests (= --max-batch) each, before it answers 503 "
                        f"(default: {EngineConfig.max_queue})")
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


def plan_from_args(args: argparse.Namespace) -> ServeConfig:
    """The plan of the one model served (the first, where --model is repeated)."""
    return plans_from_args(args)[0]


def plans_from_args(args: argparse.Namespace) -> list[ServeConfig]:
    """One plan per --model: flags over its --plan file (advice.json's replica plan) over the defaults; every value
    checked (the error names the flag, or --plan and the field)."""
    files = args.plan or []
    bases: list[dict[str, float]]
    placement = read_placement(files[0]) if len(files) == 1 else None
    if placement is not None:  # tune's placement.json: its models, each with its plan
        if args.model is not None:
            raise PlanError(f"--model: {files[0]} is a placement that names its models "
                            f"({', '.join(m for m, _ in placement)}); leave --model out")
        models, bases = [m for m, _ in placement], [base for _, base in placement]
    else:
        models = args.model or [DEFAULT_MODEL]
        if files and len(files) != len(models):
            raise PlanError(f"--plan: {len(files)} plan file(s) for {len(models)} model(s); give one --plan per "
                            "--model, in the same order")
        bases = [{**read_plan(file, "--plan").given()} for file in files] or [{} for _ in models]
    flags = {name: _each_model(name, getattr(args, name), len(models)) for name in (*PLAN_FIELDS, "mem_fraction")}
    return [_plan(args, model, bases[i], {name: values[i] for name, values in flags.items() if values is not None})
            for i, model in enumerate(models)]


def _each_model(name: str, values: list[Any] | None, models: int) -> list[Any] | None:
    """A replica-plan flag's value for each model: one value for all, or one each."""
    if values is None or len(values) == models:
        return values
    if len(values) == 1:
        return values * models
    raise PlanError(f"--{name.replace('_', '-')}: {len(values)} values for {models} model(s); give one value for "
                    "every model or one per --model")


def _plan(args: argparse.Namespace, model: str, base: dict[str, float], flags: dict[str, float]) -> ServeConfig:
    fields: dict[str, Any] = {**base, **flags}
    plan = ServeConfig(**fields, model=model, engine=args.engine, engine_cmd=args.engine_cmd, repack=args.repack,
                       pin=not args.no_pin, mps=args.mps, health_path=args.health_path,
                       metrics_path=args.metrics_path, health_timeout_s=args.health_timeout)
    if plan.engine_cmd is None:
        preset(plan.engine).check()  # an engine that is not installed is one line before any replica starts
        # the model is built (the bundled GGUF) or exported (vLLM's HF directory) once, before any start
        plan = dataclasses.replace(plan, model=preset(plan.engine).prepare(model, args.cache_dir))
    return plan


def run(args: argparse.Namespace) -> int:
    plans = plans_from_args(args)  # a PlanError, like every UserError, is one line and exit status 2
    plan = plans[0]
    models = served_models(plans) if len(plans) > 1 else None  # the names requests ask for, checked first
    if args.backend != "ray" and (args.ray_address is not None or args.max_queue is not None):
        raise PlanError("--ray-address and --max-queue apply to --backend ray")
    if args.backend == "ray" and (args.max_concurrent_per_client or args.max_rate_per_client):
        raise PlanError("--max-concurrent-per-client and --max-rate-per-client apply to the router backend: "
                        "Ray Serve's proxy has no per-client limits (put a gateway in front of it)")
    keys = api_keys(args)
    if check_tls(args) == "https" and args.backend == "ray":
        raise PlanError("--ssl-keyfile and --ssl-certfile apply to the router backend: Ray Serve's proxy serves "
                        "plain http (put a TLS gateway in front of it)")
    config = RouterConfig(host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
                          drain_timeout_s=args.drain_timeout, api_keys=keys, ssl_keyfile=args.ssl_keyfile,
                          ssl_certfile=args.ssl_certfile, max_concurrent_per_client=args.max_concurrent_per_client,
                          max_rate_per_client=args.max_rate_per_client,
                          resume_streams=plan.engine_cmd is None and preset(plan.engine).resumes_streams)
    bind_port(args.host, args.port).close()  # refuse a taken --port before any replica starts
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="paretoserve serve: %(message)s")
    logging.getLogger("paretoserve").setLevel(getattr(logging, args.log_level.upper()))  # not every httpx request
    warn_if_open("serve", args.host, keys)
    if args.backend == "ray":
        if args.model in (None, [DEFAULT_MODEL]):  # each Ray node assembles the bundled model itself
            plan = dataclasses.replace(plan, model=DEFAULT_MODEL)
        if models is not None:  # each model's deployment; a packaged model is found on each node by its keyword
            plans = [dataclasses.replace(p, model=given) if given in PACKAGED_MODELS else p
                     for p, given in zip(plans, args.model, strict=True)]
        return ray_backend().serve_on_ray(plans if models is not None else [plan], config, ray_options(args))
    if models is not None:
        return serve_models(models, config, args.log_dir)  # cores too few for every model: a PlanError
    return serve(plan, config, args.log_dir)  # a PlanError found once the machine is looked at (cores, MPS) too


def ray_backend() -> ModuleType:
    """serve/ray_backend.py, imported only for --backend ray; one line naming the extra when Ray is missing."""
    try:
        from paretoserve.serve import ray_backend
    except ImportError as exc:
        raise PlanError(f"--backend ray needs Ray Serve, which is not installed in this Python ({exc}): "
                        'pip install -e ".[ray]"') from exc
    return ray_backend


def ray_options(args: argparse.Namespace):
    options = ray_backend().RayOptions
    queue = options.max_queued_requests if args.max_queue is None else args.max_queue
    RAY_MAX_QUEUE.check("--max-queue", queue, PlanError)
    return options(address=args.ray_address, max_queued_requests=queue)
