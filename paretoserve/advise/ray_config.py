"""The advice as Ray Serve config files, written beside the advice.

- `ray-serve.yaml`: a Serve config (`serve run` / `serve deploy`) that runs the replica plan with our engine:
  its application's import path is the deployment builder in serve/ray_replica.py, its args the plan.
- `ray-serve-llm.yaml`: the same plan for Ray Serve LLM's vLLM (`ray.serve.llm:build_openai_app`), one
  LLMConfig with `max_num_seqs` = the batch cap, the KV memory of each replica, a fractional-GPU placement
  bundle per replica and `num_replicas`: the memory sizing Ray's fractional GPUs leave to the user.

When the advice holds the plan's measured capacity, both deployments autoscale instead of a fixed `num_replicas`
(`num_replicas: auto` and an `autoscaling_config` from advise/autoscaling.py, each field's reason in the header).

Both are plain data here (no Ray import): the tests load them with Ray's own schema classes.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from paretoserve.advise.advice import Advice
from paretoserve.advise.autoscaling import Autoscaling, autoscaling
from paretoserve.advise.table import SweepTable
from paretoserve.model import GGUF_ENGINES
from paretoserve.presets import ENGINE_NAMES

SERVE_FILE = "ray-serve.yaml"
LLM_FILE = "ray-serve-llm.yaml"
BUILDER = "paretoserve.serve.ray_replica:build"  # serve/ray_replica.py: build(args) -> the application
DEPLOYMENT = "EngineReplica"  # the deployment that builder makes (serve/ray_replica.py DEPLOYMENT_NAME)
LLM_BUILDER = "ray.serve.llm:build_openai_app"
APP_NAME = "paretoserve"
MAX_QUEUED = 1024  # requests each proxy queues past max_ongoing_requests before it answers 503
MEM_FRACTION = 0.9  # device memory all replicas on one GPU share (vLLM's default for one)
VLLM_BLOCK_TOKENS = 16  # vLLM allocates the KV cache in blocks of 16 tokens by default
# Ray Serve LLM batches stream chunks (50 ms by default): +48 ms TTFT through it (ray #59681); 0 sends each.
STREAM_BATCHING_MS = 0


def share(replicas: int, total: float = 1.0) -> float:
    """Each of `replicas` replicas' share of `total`, rounded down to 0.001 so the shares never exceed it."""
    return math.floor(1000 * total / replicas) / 1000


def _threads(advice: Advice, table: SweepTable) -> int:
    """Each replica's num_cpus: the plan's threads, or with 0 the measured machine's cores shared evenly."""
    plan = advice.replica_plan
    return plan.threads_per_replica or max(1, (table.cores or plan.replicas) // plan.replicas)


def _http() -> dict:
    return {"host": "127.0.0.1", "port": 8000}


def scaling_of(advice: Advice) -> Autoscaling | None:
    """The plan's autoscaling when the advice holds its measured capacity, else None (a fixed num_replicas)."""
    return autoscaling(advice.capacity) if advice.capacity is not None else None


def autoscaled(deployment: dict, scaling: Autoscaling | None) -> dict:
    """A deployment's options with `scaling` in place of its fixed num_replicas: Ray refuses a number beside an
    autoscaling_config, and `auto` (rather than leaving it out) drops the builder's own number on override."""
    if scaling is None:
        return deployment
    return {**deployment, "num_replicas": "auto", "autoscaling_config": scaling.ray_config()}


def serve_config(advice: Advice, table: SweepTable) -> dict:
    """ray-serve.yaml: the plan on our engine, as a ServeDeploySchema document."""
    plan, ctx = advice.replica_plan, advice.commands.ctx_per_seq
    engine = table.engine if table.engine in ENGINE_NAMES else "embedded"
    threads = _threads(advice, table)
    # llama.cpp engines give each sequence its own context (kv_tokens / max_batch); vLLM and SGLang share one pool,
    # sized to the KV the measured batch really needs.
    kv_tokens = plan.max_batch * ctx
    kv_bytes, per_token = kv_bytes_per_replica(advice), advice.memory.kv_bytes_per_token
    if engine not in GGUF_ENGINES and kv_bytes is not None and per_token:
        kv_tokens = kv_bytes // per_token
    args: dict = {"replicas": plan.replicas, "max_batch": plan.max_batch, "threads_per_replica": threads,
                  "ctx_per_seq": ctx, "kv_tokens": kv_tokens, "model": table.model or "default",
                  "engine": engine, "max_queued_requests": MAX_QUEUED}
    actor: dict = {"num_cpus": threads}
    if table.on_gpu and engine not in GGUF_ENGINES:
        args["num_gpus"] = actor["num_gpus"] = share(plan.replicas)
    deployment = autoscaled({"name": DEPLOYMENT, "num_replicas": plan.replicas, "max_ongoing_requests": plan.max_batch,
                             "max_queued_requests": MAX_QUEUED, "ray_actor_options": actor}, scaling_of(advice))
    return {"proxy_location": "HeadOnly", "http_options": _http(),
            "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": BUILDER, "args": args,
                              "deployments": [deployment]}]}


def kv_bytes_per_replica(advice: Advice) -> int | None:
    """KV cache bytes one replica needs for its batch cap: the KV measured at B_opt scaled to the cap (else the
    cap's full contexts), rounded up to whole vLLM blocks; None when the model's KV bytes per token are unknown."""
    memory, plan = advice.memory, advice.replica_plan
    per_token = memory.kv_bytes_per_token
    if not per_token:
        return None
    if memory.kv_need_bytes is not None and advice.b_opt:
        need = memory.kv_need_bytes * plan.max_batch / advice.b_opt
    else:
        need = plan.max_batch * advice.commands.ctx_per_seq * per_token
    return math.ceil(need / per_token / VLLM_BLOCK_TOKENS) * VLLM_BLOCK_TOKENS * per_token


def llm_config(advice: Advice, table: SweepTable) -> dict:
    """One ray.serve.llm LLMConfig (as a dict) for vLLM running the plan, N replicas sharing one GPU."""
    plan, ctx = advice.replica_plan, advice.commands.ctx_per_seq
    model = table.model if table.model and table.engine not in GGUF_ENGINES else "MODEL"
    gpu = share(plan.replicas)
    engine_kwargs: dict = {"max_num_seqs": plan.max_batch, "max_model_len": ctx,
                           # vLLM refuses to start unless this share of the device is free: N replicas, N shares
                           "gpu_memory_utilization": share(plan.replicas, MEM_FRACTION)}
    kv = kv_bytes_per_replica(advice)
    if kv is not None:
        engine_kwargs["kv_cache_memory_bytes"] = kv
    return {"model_loading_config": {"model_id": Path(model).name or model, "model_source": model},
            "llm_engine": "vLLM", "engine_kwargs": engine_kwargs,
            "placement_group_config": {"bundles": [{"CPU": 1, "GPU": gpu}], "strategy": "PACK"},
            "deployment_config": autoscaled({"num_replicas": plan.replicas, "max_ongoing_requests": plan.max_batch,
                                             "max_queued_requests": MAX_QUEUED}, scaling_of(advice)),
            "experimental_configs": {"stream_batching_interval_ms": STREAM_BATCHING_MS}}


def llm_serve_config(advice: Advice, table: SweepTable) -> dict:
    """ray-serve-llm.yaml: a Serve config whose one application is Ray Serve LLM's OpenAI app over llm_config."""
    return {"proxy_location": "HeadOnly", "http_options": _http(),
            "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": LLM_BUILDER,
                              "args": {"llm_configs": [llm_config(advice, table)]}}]}


def _header(advice: Advice, table: SweepTable, what: str) -> str:
    plan = advice.replica_plan
    lines = [f"paretoserve advice for {table.directory}: {plan.replicas} replica(s) x batch cap {plan.max_batch} "
             f"({plan.predicted_or_measured}), B_opt {advice.b_opt}, measured on {advice.device or 'this machine'}",
             what]
    scaling = scaling_of(advice)
    if scaling is not None and advice.capacity is not None:
        lines.append(f"autoscaling from the measured capacity ({advice.capacity.summary}):")
        lines += [f"  {name} {getattr(scaling, name):g}: {why}" for name, why in scaling.reasons.items()]
    return "".join(f"# {line}\n" for line in lines)


def write_ray_configs(advice: Advice, table: SweepTable, directory: str | Path) -> list[Path]:
    """Write ray-serve.yaml and ray-serve-llm.yaml into `directory`; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_note = "" if table.model and table.engine not in GGUF_ENGINES else \
        "; MODEL: the HF model (directory or id) that vLLM loads"
    files = [
        (SERVE_FILE, serve_config(advice, table),
         "run it: serve run ray-serve.yaml (paretoserve with the `ray` extra installed on every node)"),
        (LLM_FILE, llm_serve_config(advice, table),
         "for GPU nodes: serve run ray-serve-llm.yaml (ray[llm]); each replica gets its GPU share and KV "
         f"memory{model_note}"),
    ]
    paths = []
    for name, config, what in files:
        path = directory / name
        path.write_text(_header(advice, table, what) + yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
    return paths
