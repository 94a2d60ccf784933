"""Turn vLLM `bench serve` result folders into a sweep directory (one point per run folder).

A run folder holds one `bench serve` JSON and, optionally, vLLM's metric CSVs beside it
(`metrics_engine*.csv`, `metrics_gpu_device_nvidia_smi*.csv`), its `cache_config*.txt` and a launch
record (`config-*.txt`, in the folder or up to two folders above), as in "Mind the Memory Gap".
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from paretoserve.bench.metrics import GOODPUT, THROUGHPUT_METRICS
from paretoserve.geometry import GeometryError, hf_dtype_bytes, kv_shape_from_hf_config
from paretoserve.limits import UserError
from paretoserve.results.setup import ReplicaSetup

SUMMARY_FIELDS = ("date", "backend", "model_id", "num_prompts", "request_rate", "max_concurrency", "duration",
                  "completed", "failed", "total_input_tokens", "total_output_tokens", *THROUGHPUT_METRICS, GOODPUT)
# Where a run's batch cap came from when nothing but the client's concurrency limit tells it.
CONCURRENCY_SOURCE = "the run's --max-concurrency (no launch record or engine metrics)"
LATENCY_RE = re.compile(r"^(mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


class VllmImportError(UserError):
    """Bad input: the message names the file or the flag."""


def kv_bytes_per_token(config: dict, dtype_bytes: float | None = None) -> int:
    """KV bytes per token of a Hugging Face config.json (paretoserve.geometry), in the model's dtype or
    `dtype_bytes`."""
    try:
        shape = kv_shape_from_hf_config(config)
    except GeometryError as exc:
        raise VllmImportError(f"--model-config {exc}") from exc
    return shape.bytes_per_token(hf_dtype_bytes(config) if dtype_bytes is None else dtype_bytes)


def load_model_config(path: str | Path) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise VllmImportError(f"--model-config {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise VllmImportError(f"--model-config {path}: not a Hugging Face config.json object")
    return config


def is_bench_result(data) -> bool:
    return isinstance(data, dict) and all(k in data for k in ("duration", "completed", "request_throughput"))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_runs(paths: list[str | Path]) -> dict[Path, list[Path]]:
    """Run folder -> its bench result JSONs; a PATH is a result JSON, a run folder or a tree of them."""
    runs: dict[Path, list[Path]] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise VllmImportError(f"{path}: no such file or directory")
        if path.is_file():
            if not is_bench_result(_read_json(path)):
                raise VllmImportError(f"{path}: not a vLLM bench serve result (needs duration, completed, "
                                   "request_throughput)")
            runs.setdefault(path.parent, []).append(path)
            continue
        found = [p for p in sorted(path.rglob("*.json")) if is_bench_result(_read_json(p))]
        if not found:
            raise VllmImportError(f"{path}: holds no vLLM bench serve result JSON")
        for p in found:
            runs.setdefault(p.parent, []).append(p)
    return {folder: sorted(set(files)) for folder, files in runs.items()}


def merge_results(results: list[dict]) -> dict:
    """One result per folder; several (one per replica) add their counts and rates, latencies are weighted means."""
    if len(results) == 1:
        merged = dict(results[0])
    else:
        merged = {k: results[0].get(k) for k in ("date", "backend", "model_id", "request_rate")}
        merged["duration"] = max(r["duration"] for r in results)
        for k in ("completed", "failed", "num_prompts", "total_input_tokens", "total_output_tokens",
                  *THROUGHPUT_METRICS, GOODPUT):
            if all(isinstance(r.get(k), (int, float)) for r in results):
                merged[k] = sum(r[k] for r in results)
        weights = [r.get("completed") or 0 for r in results]
        for k in results[0]:
            if k.startswith("mean_") and LATENCY_RE.match(k) and sum(weights) and all(k in r for r in results):
                merged[k] = sum(r[k] * w for r, w in zip(results, weights, strict=True)) / sum(weights)
    return {k: v for k, v in merged.items() if k in SUMMARY_FIELDS or LATENCY_RE.match(k)}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _num(row: dict, *names: str) -> float | None:
    for name in names:
        try:
            return float(row[name])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def engine_metrics(paths: list[Path], duration: float) -> dict:
    """Running requests and KV use from vLLM's sampled gauges, samples taken before `duration` ended."""
    running, kv, preempt, busy = [], [], [], []
    for path in paths:
        rows = [r for r in _rows(path) if (_num(r, "time [s]", "time") or 0.0) <= duration] or _rows(path)
        run = [_num(r, "num_requests_running") for r in rows]
        wait = [_num(r, "num_requests_waiting") for r in rows]
        running.append(max((v for v in run if v is not None), default=None))
        busy += [v for v, w in zip(run, wait, strict=True) if v is not None and (v > 0 or (w or 0) > 0)]
        kv.append(max((v for r in rows if (v := _num(r, "gpu_cache_usage_perc", "kv_cache_usage_perc")) is not None),
                      default=None))
        preempt.append(max((v for r in rows if (v := _num(r, "num_preemptions_total")) is not None), default=None))
    out: dict = {}
    if running and None not in running:
        out["max_running"] = int(sum(v or 0 for v in running))  # replicas side by side: their caps add up
    if busy:
        out["mean_running"] = sum(busy) / len(busy) * len(paths)  # mean while the engine had work
    if kv and None not in kv:
        out["kv_peak_fraction"] = max(v or 0 for v in kv)
    if preempt and None not in preempt:
        out["preemptions"] = int(sum(v or 0 for v in preempt))
    return out


def mean_power(paths: list[Path], duration: float) -> float | None:
    """Mean GPU power (W) from `nvidia-smi dmon` CSVs (a units row under the header), summed over files."""
    total = 0.0
    for path in paths:
        values = [v for r in _rows(path) if (v := _num(r, "pwr")) is not None and (_num(r, "time") or 0) <= duration]
        if not values:
            return None
        total += sum(values) / len(values)
    return total if paths else None


def cache_config(path: Path) -> dict:
    """The labels of vllm:cache_config_info (block_size, num_gpu_blocks, cache_dtype, ...)."""
    match = re.search(r"cache_config_info\{([^}]*)\}", path.read_text())
    return dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) if match else {}


def _record_caps(record: Path) -> list[int]:
    text = record.read_text()
    values = [int(v) for m in re.finditer(r"""['"]?--max-num-seqs['"]?\s*:\s*\[([^\]]*)\]""", text)
              for v in re.findall(r"\d+", m.group(1))]
    return values + [int(v) for v in re.findall(r"""--max-num-seqs[ =]['"]?(\d+)""", text)]


def launch_cap(folder: Path) -> tuple[int, str] | None:
    """The batch cap from the launch record (`config-*.txt`, --max-num-seqs): a record in the run folder
    with one value, else the first number of the folder's name (`_128__2000`) when a record lists it."""
    for record in sorted(folder.glob("config-*.txt")):
        if len(set(values := _record_caps(record))) == 1:
            return values[0], str(record)
    numbers = [int(n) for n in re.findall(r"\d+", folder.name)]
    for directory in (folder, folder.parent, folder.parent.parent) if numbers else ():
        for record in sorted(directory.glob("config-*.txt")):
            if numbers[0] in _record_caps(record):
                return numbers[0], str(record)
    return None


def import_runs(paths: list[str | Path], kv_per_token: int | None = None,
                model_config: dict | None = None) -> list[dict]:
    """One sweep record per run folder, smallest batch cap first."""
    records, keys = [], set()
    for folder, files in find_runs(paths).items():
        summary = merge_results([_read_json(p) for p in files])
        replicas = max(1, len(list(folder.glob("cache_config*.txt"))), len(list(folder.glob("metrics_engine*.csv"))))
        record: dict = {**summary, **engine_metrics(sorted(folder.glob("metrics_engine*.csv")), summary["duration"])}
        cap = launch_cap(folder)
        if cap is not None:
            record["max_batch_source"] = cap[1]
            max_batch = cap[0]
        elif "max_running" in record:
            record["max_batch_source"] = "max num_requests_running"
            max_batch = record["max_running"] // replicas
        elif isinstance(summary.get("max_concurrency"), int) and summary["max_concurrency"] > 0:
            # a plain `bench serve --max-concurrency N` run: the batch it could reach, said in the record
            record["max_batch_source"] = CONCURRENCY_SOURCE
            max_batch = summary["max_concurrency"]
        else:
            raise VllmImportError(f"{folder}: no launch record (config-*.txt with --max-num-seqs), no "
                               "metrics_engine*.csv and no --max-concurrency in the result to read the batch cap from")
        caches = [cache_config(p) for p in sorted(folder.glob("cache_config*.txt"))]
        kv_tokens = None
        if caches and all("num_gpu_blocks" in c for c in caches):
            kv_tokens = sum(int(c["num_gpu_blocks"]) * int(c.get("block_size", 16)) for c in caches) // len(caches)
            per_token = kv_per_token
            if per_token is None and model_config is not None:
                cache_dtype = caches[0].get("cache_dtype", "auto")
                per_token = kv_bytes_per_token(model_config, 1 if cache_dtype.startswith("fp8") else None)
            if per_token is None:
                raise VllmImportError(f"{folder}: KV blocks need --model-config config.json or --kv-bytes-per-token N "
                                   "to become bytes")
            record["kv_budget_bytes"] = kv_tokens * len(caches) * per_token
            if all("gpu_memory_utilization" in c for c in caches):  # each replica's share of device memory
                record["gpu_memory_utilization"] = sum(float(c["gpu_memory_utilization"]) for c in caches)
            if "kv_peak_fraction" in record:
                record["kv_peak_bytes"] = int(record["kv_peak_fraction"] * record["kv_budget_bytes"])
        power = mean_power(sorted(folder.glob("metrics_gpu_device_nvidia_smi*.csv")), summary["duration"])
        if power is not None:
            record["mean_power_w"] = power
        point = ReplicaSetup(max_batch=max_batch, kv_tokens=kv_tokens, threads=0, replicas=replicas)
        key = point.key() if point.key() not in keys else f"{point.key()}@{folder}"
        keys.add(key)
        records.append({"key": key, "config": point.as_dict(), "status": "ok", **record, "source": str(folder)})
    return sorted(records, key=lambda r: (r["config"]["max_batch"], r["source"]))


def environment(gpu_name: str | None = None, gpu_memory_bytes: int | None = None) -> dict:
    """What the data says about the machine; the bench JSONs and metric CSVs name no GPU, so mostly unknown."""
    return {"source": "imported from vLLM bench serve results", "gpus": [
        {"index": 0, "name": gpu_name or "unknown", "memory_total_bytes": gpu_memory_bytes}]}  # None: not known
