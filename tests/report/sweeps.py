"""A small CPU-like sweep directory as `paretoserve sweep` writes it, and the report settings of its tests."""

from __future__ import annotations

from pathlib import Path

from paretoserve.report import ReportConfig
from paretoserve.results.store import SweepStore

FAST = ReportConfig(dpi=40)  # low resolution keeps the tests fast; the content is the same

KV_BYTES_PER_TOKEN = 18_432  # Gemma 3 270M, f16
THROUGHPUT = {1: 85.0, 2: 80.0, 4: 110.0, 8: 170.0, 16: 250.0, 32: 275.0}  # tok/s, shaped like this machine's


def make_point(batch: int, throughput: float, replicas: int = 1, threads: int = 2) -> dict:
    tpot = 1000.0 * batch * replicas / throughput
    return {"key": f"b{batch}-kvdefault-t{threads}-r{replicas}",
            "config": {"max_batch": batch, "kv_tokens": None, "threads": threads, "replicas": replicas},
            "status": "ok", "output_throughput": throughput, "request_throughput": throughput / 128,
            "mean_tpot_ms": tpot, "median_tpot_ms": tpot * 0.98, "p99_tpot_ms": tpot * 1.2,
            "mean_itl_ms": tpot, "median_itl_ms": tpot * 0.97, "p99_itl_ms": tpot * 1.5,
            "mean_ttft_ms": 30.0 * batch, "median_ttft_ms": 28.0 * batch, "p99_ttft_ms": 45.0 * batch,
            "energy_per_output_token_j": 24.0 / throughput, "energy_source": "estimated",
            "energy_note": "estimated: engine CPU time x 12 W per busy core",
            "kv_peak_fraction": 0.4, "kv_budget_bytes": batch * replicas * 160 * KV_BYTES_PER_TOKEN,
            "rss_peak_bytes": 500_000_000 + batch * 5_000_000}


def write_sweep(directory: Path, points: list[dict], failed: int = 0) -> Path:
    """A sweep directory as `paretoserve sweep` writes it (of a model file not on this machine)."""
    store = SweepStore(directory)
    store.open({"model": "test-model.gguf", "kv_bytes_per_token": KV_BYTES_PER_TOKEN,
                "workload": {"input_tokens": "32", "output_tokens": "128"}},
               {"cpu_model": "Test CPU", "cpu_cores": 2, "memory_total_bytes": 24_000_000_000, "gpus": []},
               resume=False)
    for p in points:
        store.append(p)
    for i in range(failed):
        store.append({"key": f"b64-kvdefault-t2-r{i + 1}", "config": {"max_batch": 64, "replicas": i + 1},
                      "status": "failed", "reason": "engine exited with status 1"})
    return directory
