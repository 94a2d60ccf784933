"""One measured point: a points.jsonl record read once into a typed `Point`.

Batch sizes, each per replica:
- `max_batch` (nominal): the batch cap the engine was started with (`--max-batch`, vLLM's `--max-num-seqs`).
- `batch` (measured, peak): the most sequences that ran at once, `max_running / replicas` rounded (at least 1);
  the cap where the run sampled none. The BCA's B, and `batch` in `advise --json`.
- `mean_batch` (measured, mean): sequences running on average while the engine had work, `mean_running /
  replicas`, kept within 1..max_batch; the cap where not sampled. The batch a roofline fit sees.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, model_validator

LATENCY_FIELD = re.compile(r"^(mean|median|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
DERIVED_ENERGY_SOURCE = "nvidia-smi mean power x duration"


class Point(BaseModel):
    """One measured configuration; sizes in bytes, throughput in tokens (or requests) per second."""

    key: str
    max_batch: int  # nominal: the batch cap each replica was started with
    batch: int  # measured peak: max running requests per replica where sampled, else the cap
    mean_batch: float  # measured mean: running requests per replica while busy (1..cap) where sampled, else the cap
    replicas: int = 1
    threads: int = 0
    kv_tokens: int | None = None  # KV budget per replica in tokens, as configured (None = engine default)
    completed: int = 0  # requests completed
    output_throughput: float
    total_token_throughput: float
    request_throughput: float
    tokens_per_request: float | None = None  # mean prompt + output tokens of a completed request
    input_tokens_per_request: float | None = None
    output_tokens_per_request: float | None = None
    latency_ms: dict[str, float]  # mean_tpot_ms, median_itl_ms, p99_ttft_ms, ...
    kv_peak_fraction: float | None = None  # largest share of the KV cache in use
    kv_budget_bytes: float | None = None  # KV cache allocated, all replicas together
    kv_peak_bytes: float | None = None  # kv_peak_fraction x kv_budget_bytes
    memory_bytes: float | None = None  # measured peak: device memory, else engine process RSS
    energy_per_output_token_j: float | None = None
    energy_source: str | None = None  # as recorded (nvml, rapl, estimated, none), or how a vLLM import's was derived
    energy_note: str | None = None  # how the energy was measured or estimated, in words
    preemptions: int | None = None
    gpu_memory_utilization: float | None = None  # vLLM: the share of device memory all replicas were given
    engine_cpu_cores: float | None = None  # mean busy cores of the engine process (CPU sweeps)
    wall_s: float | None = None
    repeats: int = 1  # runs the figures are the mean of
    ci95: dict[str, tuple[float, float]] = {}  # 95 % interval of a figure over the repeats; empty for one run

    @model_validator(mode="before")
    @classmethod
    def _mean_batch_defaults_to_the_cap(cls, data):  # so that it can be left out where not sampled
        if isinstance(data, dict) and data.get("mean_batch") is None:
            data = {**data, "mean_batch": data.get("max_batch")}
        return data

    def throughput(self, metric: str) -> float:
        return getattr(self, metric)

    def figure(self, field: str) -> float | None:
        """A figure by its points.jsonl or Point name (`output_throughput`, `mean_tpot_ms`, `p99_itl_ms`,
        `energy_per_output_token_j`, `kv_peak_fraction`, ...); None where the point lacks it."""
        if LATENCY_FIELD.match(field):
            return self.latency_ms.get(field)
        value = getattr(self, field, None)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def interval(self, field: str) -> tuple[float, float] | None:
        """The 95 % interval of `field` (a throughput or a latency field) over the repeats; None for one run."""
        return self.ci95.get(field)

    def config(self) -> dict:
        return {"max_batch": self.max_batch, "batch": self.batch, "replicas": self.replicas,
                "threads": self.threads, "kv_tokens": self.kv_tokens}


def max_batch_of(record: dict) -> int:
    """The nominal batch of a record: the cap each replica was started with."""
    return int(record["config"]["max_batch"])


def replicas_of(record: dict) -> int:
    return int(record["config"].get("replicas") or 1)


def record_energy(record: dict) -> tuple[float | None, str | None]:
    """A record's energy per output token (J) and its source: its own, else for vLLM imports mean GPU power
    x duration / output tokens."""
    energy, source = record.get("energy_per_output_token_j"), record.get("energy_source")
    if energy is None and record.get("mean_power_w") and record.get("total_output_tokens"):
        energy = record["mean_power_w"] * record["duration"] / record["total_output_tokens"]
        source = DERIVED_ENERGY_SOURCE
    return energy, source


def with_derived_energy(record: dict) -> dict:
    """The record with the energy `record_energy` derives filled in where it has none of its own."""
    energy, source = record_energy(record)
    if record.get("energy_per_output_token_j") is None and energy is not None:
        return {**record, "energy_per_output_token_j": energy, "energy_source": source}
    return record


def _running_per_replica(value, replicas: int) -> float | None:
    return value / replicas if isinstance(value, (int, float)) and value > 0 else None


def to_point(record: dict, kv_bytes_per_token: int | None = None) -> Point:
    """One finished points.jsonl record as a Point; KV bytes derived from the engine's token budget where needed."""
    config = record["config"]
    replicas, cap = replicas_of(record), max_batch_of(record)
    peak = _running_per_replica(record.get("max_running"), replicas)
    mean = _running_per_replica(record.get("mean_running"), replicas)
    budget = record.get("kv_budget_bytes")
    budget_tokens = max((s.get("kv_tokens_budget") or 0 for s in record.get("samples") or []), default=0)
    if budget is None and budget_tokens and kv_bytes_per_token:
        budget = budget_tokens * kv_bytes_per_token
    kv_peak = record.get("kv_peak_fraction")
    energy, source = record_energy(record)
    completed, output_tokens = record.get("completed") or 0, record.get("total_output_tokens", 0)
    input_tokens = record.get("total_input_tokens", 0)
    cores = record.get("engine_cpu_cores")
    return Point(
        key=record["key"], max_batch=cap, batch=max(1, round(peak)) if peak else cap,
        mean_batch=max(min(mean, cap), 1.0) if mean else None, replicas=replicas,
        threads=int(config.get("threads") or 0), kv_tokens=config.get("kv_tokens"), completed=completed,
        output_throughput=float(record.get("output_throughput") or 0.0),
        total_token_throughput=float(record.get("total_token_throughput") or 0.0),
        request_throughput=float(record.get("request_throughput") or 0.0),
        tokens_per_request=(input_tokens + output_tokens) / completed if completed else None,
        input_tokens_per_request=input_tokens / completed if completed else None,
        output_tokens_per_request=output_tokens / completed if completed else None,
        latency_ms={k: float(v) for k, v in record.items() if LATENCY_FIELD.match(k) and isinstance(v, (int, float))},
        kv_peak_fraction=kv_peak, kv_budget_bytes=budget,
        kv_peak_bytes=kv_peak * budget if kv_peak is not None and budget else None,
        memory_bytes=record.get("device_memory_peak_bytes") or record.get("rss_peak_bytes"),
        energy_per_output_token_j=energy, energy_source=source, energy_note=record.get("energy_note"),
        preemptions=int(record["preemptions"]) if isinstance(record.get("preemptions"), (int, float)) else None,
        gpu_memory_utilization=record.get("gpu_memory_utilization"),
        engine_cpu_cores=cores if isinstance(cores, (int, float)) else None, wall_s=record.get("wall_s"),
        repeats=int(record.get("repeats") or 1),
        ci95={k: (float(v[0]), float(v[1])) for k, v in (record.get("ci95") or {}).items()})
