"""The advice as Ray Serve config files, written beside the advice.

- `ray-serve.yaml`: a Serve config (`serve run` / `serve deploy`) that runs the replica plan with our engine:
  its application's import path is the deployment builder in serve/ray_replica.py, its args the plan.
- `ray-serve-llm.yaml`: the same plan for Ray Serve LLM's vLLM (`ray.serve.llm:build_openai_app`), one
  LLMConfig with `max_num_seqs` = the batch cap, the KV memory of each replica, a fractional-GPU placement
  bundle per replica and `num_replicas`: the memory sizing Ray's fractional GPUs leave to the user.

Several models on one device (`write_ray_configs_models`, from one (Advice, SweepTable) pair per model): one
application serves them all. `ray-serve.yaml`'s args hold every model's plan (`models`: one deployment per model,
`EngineReplica-i`, behind the `ModelIngress` deployment that routes by the request's model); `ray-serve-llm.yaml`
holds one LLMConfig per model, which Ray's `build_openai_app` routes by model id. Every replica of every model
shares the device: each gets 1/N of the GPU and of its memory, N the replicas of all models together.

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
from paretoserve.advise.memory_map import MEMORY_CEILING  # device memory all replicas on one GPU share
from paretoserve.advise.table import SweepTable
from paretoserve.model import GGUF_ENGINES
from paretoserve.presets import ENGINE_NAMES

SERVE_FILE = "ray-serve.yaml"
LLM_FILE = "ray-serve-llm.yaml"
BUILDER = "paretoserve.serve.ray_replica:build"  # serve/ray_replica.py: build(args) -> the application
DEPLOYMENT = "EngineReplica"  # the deployment that builder makes (serve/ray_replica.py DEPLOYMENT_NAME)
INGRESS = "ModelIngress"  # with several models, the deployment in front of theirs (serve/ray_ingress.py INGRESS_NAME)
LLM_BUILDER = "ray.serve.llm:build_openai_app"
APP_NAME = "paretoserve"
MAX_QUEUED = 1024  # requests each proxy queues past max_ongoing_requests before it answers 503
VLLM_BLOCK_TOKENS = 16  # vLLM allocates the KV cache in blocks of 16 tokens by default
SERVE_HOW = "run it: serve run ray-serve.yaml (paretoserve with the `ray` extra installed on every node)"
LLM_HOW = "for GPU nodes: serve run ray-serve-llm.yaml (ray[llm]); each replica gets its GPU share and KV memory"
# Ray Serve LLM batches stream chunks (50 ms by default): +48 ms TTFT through it (ray #59681); 0 sends each.
STREAM_BATCHING_MS = 0


def share(replicas: int, total: float = 1.0) -> float:
    """Each of `replicas` replicas' share of `total`, rounded down to 0.001 so the shares never exceed it."""
    return math.floor(1000 * total / replicas) / 1000


def _threads(advice: Advice, table: SweepTable, device_replicas: int | None = None) -> int:
    """Each replica's num_cpus: the plan's threads, or with 0 the measured machine's cores shared evenly among the
    `device_replicas` on it (the plan's own replicas by default)."""
    plan = advice.replica_plan
    replicas = device_replicas or plan.replicas
    return plan.threads_per_replica or max(1, (table.cores or replicas) // replicas)


def _document(import_path: str, args: dict, deployments: list[dict] | None = None) -> dict:
    """A Serve config of one application, `import_path` built over `args` (with `deployments`' options)."""
    app: dict = {"name": APP_NAME, "route_prefix": "/", "import_path": import_path, "args": args}
    if deployments is not None:
        app["deployments"] = deployments
    return {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8000}, "applications": [app]}


def scaling_of(advice: Advice) -> Autoscaling | None:
    """The plan's autoscaling when the advice holds its measured capacity, else None (a fixed num_replicas)."""
    return autoscaling(advice.capacity) if advice.capacity is not None else None


def autoscaled(deployment: dict, scaling: Autoscaling | None) -> dict:
    """A deployment's options with `scaling` in place of its fixed num_replicas: Ray refuses a number beside an
    autoscaling_config, and `auto` (rather than leaving it out) drops the builder's own number on override."""
    if scaling is None:
        return deployment
    return {**deployment, "num_replicas": "auto", "autoscaling_config": scaling.ray_config()}


def serve_config(advice: Advice, table: SweepTable, device_replicas: int | None = None,
                 mem_fraction: float | None = None) -> dict:
    """ray-serve.yaml: the plan on our engine, as a ServeDeploySchema document; `device_replicas`: the replicas that
    share the device (the plan's own by default); `mem_fraction`: the device memory this model's replicas share on a
    GPU (None: the engine preset's default)."""
    plan, ctx = advice.replica_plan, advice.commands.ctx_per_seq
    engine = table.engine if table.engine in ENGINE_NAMES else "embedded"
    threads = _threads(advice, table, device_replicas)
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
        args["num_gpus"] = actor["num_gpus"] = share(device_replicas or plan.replicas)
        if mem_fraction is not None:
            args["mem_fraction"] = mem_fraction
    deployment = autoscaled({"name": DEPLOYMENT, "num_replicas": plan.replicas, "max_ongoing_requests": plan.max_batch,
                             "max_queued_requests": MAX_QUEUED, "ray_actor_options": actor}, scaling_of(advice))
    return _document(BUILDER, args, [deployment])


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


def llm_config(advice: Advice, table: SweepTable, device_replicas: int | None = None,
               placeholder: str = "MODEL", mem_fraction: float | None = None) -> dict:
    """One ray.serve.llm LLMConfig (as a dict) for vLLM running the plan, N replicas sharing one GPU (N =
    `device_replicas`, the plan's own replicas by default); `placeholder` stands for a model vLLM cannot load;
    `mem_fraction`: the device memory this model's replicas share (None: an equal share of MEMORY_CEILING each)."""
    plan, ctx = advice.replica_plan, advice.commands.ctx_per_seq
    model = table.model if table.model and table.engine not in GGUF_ENGINES else placeholder
    gpu = share(device_replicas or plan.replicas)
    # vLLM refuses to start unless this share of the device is free: N replicas, N shares
    utilisation = share(plan.replicas, mem_fraction) if mem_fraction else share(device_replicas or plan.replicas,
                                                                                 MEMORY_CEILING)
    engine_kwargs: dict = {"max_num_seqs": plan.max_batch, "max_model_len": ctx,
                           "gpu_memory_utilization": utilisation}
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
    return _document(LLM_BUILDER, {"llm_configs": [llm_config(advice, table)]})


def _plan_line(advice: Advice, table: SweepTable) -> str:
    plan = advice.replica_plan
    return (f"{table.directory}: {plan.replicas} replica(s) x batch cap {plan.max_batch} "
            f"({plan.predicted_or_measured}), B_opt {advice.b_opt}, measured on {advice.device or 'this machine'}")


def _scaling_lines(advice: Advice) -> list[str]:
    """The autoscaling's fields with their reasons, where the advice holds the measured capacity."""
    scaling = scaling_of(advice)
    if scaling is None or advice.capacity is None:
        return []
    return [f"autoscaling from the measured capacity ({advice.capacity.summary}):",
            *(f"  {name} {getattr(scaling, name):g}: {why}" for name, why in scaling.reasons.items())]


def _header(advice: Advice, table: SweepTable, what: str) -> str:
    lines = [f"paretoserve advice for {_plan_line(advice, table)}", what, *_scaling_lines(advice)]
    return "".join(f"# {line}\n" for line in lines)


def write_ray_configs(advice: Advice, table: SweepTable, directory: str | Path) -> list[Path]:
    """Write ray-serve.yaml and ray-serve-llm.yaml into `directory`; returns their paths."""
    model_note = "" if table.model and table.engine not in GGUF_ENGINES else \
        "; MODEL: the HF model (directory or id) that vLLM loads"
    return _write(directory, [
        (SERVE_FILE, serve_config(advice, table), _header(advice, table, SERVE_HOW)),
        (LLM_FILE, llm_serve_config(advice, table), _header(advice, table, LLM_HOW + model_note)),
    ])


def serve_config_models(pairs: list[tuple[Advice, SweepTable]], mem_fractions: list[float | None] | None = None
                        ) -> dict:
    """ray-serve.yaml for several models on one device: one application whose args hold every model's plan, model
    i's deployment `EngineReplica-i` (options as for one model) and the ingress in front of them; on a GPU each
    model's replicas share its `mem_fractions` entry, else an equal share per replica of MEMORY_CEILING."""
    replicas = _device_replicas(pairs)
    shares = _memory_shares(pairs, mem_fractions)
    apps = [serve_config(advice, table, replicas, fraction)["applications"][0]
            for (advice, table), fraction in zip(pairs, shares, strict=True)]
    deployments = [{**app["deployments"][0], "name": f"{DEPLOYMENT}-{i}"} for i, app in enumerate(apps)]
    # The ingress holds every request in flight or queued for any model, at the most replicas each may scale to.
    ongoing = sum(_most_replicas(advice) * advice.replica_plan.max_batch + MAX_QUEUED for advice, _ in pairs)
    ingress = {"name": INGRESS, "num_replicas": 1, "max_ongoing_requests": ongoing, "max_queued_requests": MAX_QUEUED,
               "ray_actor_options": {"num_cpus": 0}}  # 0: it only relays, like Ray's proxy
    return _document(BUILDER, {"models": [app["args"] for app in apps]}, [*deployments, ingress])


def llm_serve_config_models(pairs: list[tuple[Advice, SweepTable]], mem_fractions: list[float | None] | None = None
                            ) -> dict:
    """ray-serve-llm.yaml for several models on one device: one LLMConfig per model (build_openai_app routes by
    model id), every replica of every model one share of the GPU, and of its memory as `serve_config_models`."""
    replicas = _device_replicas(pairs)
    shares = _memory_shares(pairs, mem_fractions)
    configs = [llm_config(advice, table, replicas, f"MODEL_{i + 1}", fraction)
               for i, ((advice, table), fraction) in enumerate(zip(pairs, shares, strict=True))]
    return _document(LLM_BUILDER, {"llm_configs": configs})


def write_ray_configs_models(pairs: list[tuple[Advice, SweepTable]], directory: str | Path,
                             mem_fractions: list[float | None] | None = None) -> list[Path]:
    """Write ray-serve.yaml and ray-serve-llm.yaml for several models on one device into `directory`;
    `mem_fractions`: each model's share of the device's memory (a placement's memory map), else equal shares."""
    lines = [f"paretoserve advice for {len(pairs)} models on one device, each routed by its model name:"]
    for i, (advice, table) in enumerate(pairs):
        lines += [f"  model {i + 1} ({table.model or f'MODEL_{i + 1}'}), {_plan_line(advice, table)}",
                  *(f"  {line}" for line in _scaling_lines(advice))]
    placeholders = ", ".join(f"MODEL_{i + 1}" for i, (_, table) in enumerate(pairs)
                             if not table.model or table.engine in GGUF_ENGINES)
    note = f"; {placeholders}: the HF models (directory or id) that vLLM loads" if placeholders else ""
    return _write(directory, [
        (SERVE_FILE, serve_config_models(pairs, mem_fractions), "".join(f"# {line}\n" for line in [*lines, SERVE_HOW])),
        (LLM_FILE, llm_serve_config_models(pairs, mem_fractions),
         "".join(f"# {line}\n" for line in [*lines, LLM_HOW + note])),
    ])


def _device_replicas(pairs: list[tuple[Advice, SweepTable]]) -> int:
    """The replicas of every model together: they share the one device."""
    return sum(advice.replica_plan.replicas for advice, _ in pairs)


def _memory_shares(pairs: list[tuple[Advice, SweepTable]], given: list[float | None] | None) -> list[float]:
    """Each model's share of the device's memory: the given one, else its replicas' equal shares of MEMORY_CEILING
    (engines sharing one GPU must not reserve more than it has between them)."""
    device = _device_replicas(pairs)
    given = given or [None] * len(pairs)
    return [fraction or advice.replica_plan.replicas * share(device, MEMORY_CEILING)
            for (advice, _), fraction in zip(pairs, given, strict=True)]


def _most_replicas(advice: Advice) -> int:
    """The most replicas the model's deployment runs: its autoscaling's maximum, else its fixed count."""
    scaling = scaling_of(advice)
    return int(scaling.max_replicas) if scaling is not None else advice.replica_plan.replicas


def _write(directory: str | Path, files: list[tuple[str, dict, str]]) -> list[Path]:
    """Each (file name, config, header) as header + YAML in `directory`; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, config, header in files:
        path = directory / name
        path.write_text(header + yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
    return paths
