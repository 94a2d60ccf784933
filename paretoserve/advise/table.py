"""A sweep directory as a table: one `Point` per finished configuration, with the measured batch size.

Works on sweeps of the embedded engine and on `paretoserve import vllm` directories alike.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from paretoserve.geometry import kv_bytes_per_token_gguf
from paretoserve.limits import UserError

LATENCY_FIELD = re.compile(r"^(mean|median|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


class AdviseError(UserError):
    """Bad input to advise: the message names the flag or the file and what is allowed."""


class Point(BaseModel):
    """One measured configuration; sizes in bytes, throughput in tokens (or requests) per second."""

    key: str
    max_batch: int  # the batch cap each replica was started with
    batch: int  # the batch reached: max running requests per replica where measured, else the cap
    replicas: int = 1
    threads: int = 0
    kv_tokens: int | None = None  # KV budget per replica in tokens, as configured (None = engine default)
    output_throughput: float
    total_token_throughput: float
    request_throughput: float
    tokens_per_request: float | None = None  # mean prompt + output tokens of a completed request
    output_tokens_per_request: float | None = None
    latency_ms: dict[str, float]  # mean_tpot_ms, median_itl_ms, p99_ttft_ms, ...
    kv_peak_fraction: float | None = None  # largest share of the KV cache in use
    kv_budget_bytes: float | None = None  # KV cache allocated, all replicas together
    kv_peak_bytes: float | None = None  # kv_peak_fraction x kv_budget_bytes
    memory_bytes: float | None = None  # measured peak: device memory, else engine process RSS
    energy_per_output_token_j: float | None = None
    energy_source: str | None = None
    preemptions: int | None = None
    gpu_memory_utilization: float | None = None  # vLLM: the share of device memory all replicas were given
    wall_s: float | None = None

    def throughput(self, metric: str) -> float:
        return getattr(self, metric)

    def config(self) -> dict:
        return {"max_batch": self.max_batch, "batch": self.batch, "replicas": self.replicas,
                "threads": self.threads, "kv_tokens": self.kv_tokens}


class SweepTable(BaseModel):
    """Every finished point of a sweep plus what the sweep knows about its machine and model."""

    directory: str
    points: list[Point]
    imported_from: str | None = None  # "vllm" for imported sweeps, None for paretoserve's own
    model: str | None = None
    kv_bytes_per_token: int | None = None
    weights_bytes: int | None = None  # GGUF file size for the embedded engine
    ctx_per_seq: int | None = None
    device_memory_bytes: int | None = None  # from the environment: the GPU's memory, else the machine's RAM
    device_name: str | None = None
    cores: int | None = None
    on_gpu: bool = False  # replicas share the accelerator, not the CPU cores
    cpu_features: list[str] | None = None  # the measured machine's llama.cpp-relevant CPU flags; None = not recorded

    def singles(self) -> list[Point]:
        """The single-replica points, smallest batch first: the BCA's input."""
        return sorted((p for p in self.points if p.replicas == 1), key=lambda p: (p.batch, p.max_batch))


def _model_file(spec: dict) -> Path | None:
    """The GGUF file an embedded-engine sweep ran, when it is still on this machine."""
    if spec.get("engine_cmd") or spec.get("imported_from") or not spec.get("model"):
        return None
    if spec["model"] == "default":
        from paretoserve.model import ModelError, resolve_model
        try:
            return resolve_model("default").path
        except (ModelError, ImportError, OSError):
            return None
    path = Path(spec["model"])
    return path if path.is_file() else None


def _device(environment: dict) -> tuple[int | None, str | None]:
    gpus = [g for g in environment.get("gpus") or [] if isinstance(g.get("memory_total_bytes"), (int, float))]
    if gpus:
        return int(gpus[0]["memory_total_bytes"]), gpus[0].get("name")
    ram = environment.get("memory_total_bytes")
    return (int(ram), environment.get("cpu_model") or "CPU") if isinstance(ram, (int, float)) else (None, None)


def record_energy(record: dict) -> tuple[float | None, str | None]:
    """A record's energy per output token (J) and its source: its own, else for vLLM imports mean GPU power
    x duration / output tokens."""
    energy, source = record.get("energy_per_output_token_j"), record.get("energy_source")
    if energy is None and record.get("mean_power_w") and record.get("total_output_tokens"):
        energy = record["mean_power_w"] * record["duration"] / record["total_output_tokens"]
        source = "nvidia-smi mean power x duration"
    return energy, source


def to_point(record: dict, kv_bytes_per_token: int | None) -> Point:
    """One points.jsonl record as a Point; KV bytes derived from the engine's token budget where needed."""
    config = record.get("config") or {}
    replicas = int(config.get("replicas") or 1)
    cap = int(config["max_batch"])
    running = record.get("max_running")
    batch = max(1, round(running / replicas)) if isinstance(running, (int, float)) and running > 0 else cap
    budget = record.get("kv_budget_bytes")
    budget_tokens = max((s.get("kv_tokens_budget") or 0 for s in record.get("samples") or []), default=0)
    if budget is None and budget_tokens and kv_bytes_per_token:
        budget = budget_tokens * kv_bytes_per_token
    peak = record.get("kv_peak_fraction")
    kv_peak_bytes = peak * budget if peak is not None and budget else None
    memory = record.get("device_memory_peak_bytes") or record.get("rss_peak_bytes")
    energy, source = record_energy(record)
    completed, output_tokens = record.get("completed"), record.get("total_output_tokens", 0)
    return Point(
        key=record["key"], max_batch=cap, batch=batch, replicas=replicas, threads=int(config.get("threads") or 0),
        kv_tokens=config.get("kv_tokens"), output_throughput=float(record.get("output_throughput") or 0.0),
        total_token_throughput=float(record.get("total_token_throughput") or 0.0),
        request_throughput=float(record.get("request_throughput") or 0.0),
        tokens_per_request=(record.get("total_input_tokens", 0) + output_tokens) / completed if completed else None,
        output_tokens_per_request=output_tokens / completed if completed else None,
        latency_ms={k: float(v) for k, v in record.items() if LATENCY_FIELD.match(k) and isinstance(v, (int, float))},
        kv_peak_fraction=peak, kv_budget_bytes=budget, kv_peak_bytes=kv_peak_bytes, memory_bytes=memory,
        energy_per_output_token_j=energy, energy_source=source if energy is not None else None,
        preemptions=int(record["preemptions"]) if isinstance(record.get("preemptions"), (int, float)) else None,
        gpu_memory_utilization=record.get("gpu_memory_utilization"), wall_s=record.get("wall_s"))


def load_table(directory: str | Path) -> SweepTable:
    """Read a sweep directory (sweep.json + points.jsonl); raises AdviseError naming what is missing."""
    from paretoserve.sweep.store import StoreError, SweepStore

    store = SweepStore(directory)
    try:
        stored, records, _ = store.read_finished()
    except StoreError as exc:
        raise AdviseError(str(exc)) from exc
    spec, environment = stored.get("spec") or {}, stored.get("environment") or {}
    model_file = _model_file(spec)
    per_token = spec.get("kv_bytes_per_token") or (kv_bytes_per_token_gguf(model_file) if model_file else None)
    weights = model_file.stat().st_size if model_file else None
    device_bytes, device_name = _device(environment)
    models = spec.get("model")
    return SweepTable(
        directory=str(store.dir), points=[to_point(r, per_token) for r in records],
        imported_from=spec.get("imported_from"), model=", ".join(models) if isinstance(models, list) else models,
        kv_bytes_per_token=per_token, weights_bytes=weights, ctx_per_seq=spec.get("ctx_per_seq"),
        device_memory_bytes=device_bytes, device_name=device_name,
        cores=environment.get("cpu_cores_usable") or environment.get("cpu_cores"),
        on_gpu=bool(environment.get("gpus")) or spec.get("imported_from") == "vllm",
        cpu_features=environment.get("cpu_features"))

