"""Fixtures: a small CPU-like sweep directory (estimated energy, replica points, a failed point) and its advice."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoserve.report import ReportConfig, ReportFiles, write_report
from paretoserve.sweep.store import SweepStore

FAST = ReportConfig(dpi=40)  # low resolution keeps the tests fast; the content is the same

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
            "kv_peak_fraction": 0.4, "rss_peak_bytes": 500_000_000 + batch * 5_000_000}


def write_sweep(directory: Path, points: list[dict], failed: int = 0) -> Path:
    """A sweep directory as `paretoserve sweep` writes it."""
    store = SweepStore(directory)
    store.open({"model": "default", "workload": {"input_tokens": "32", "output_tokens": "128"}},
               {"cpu_model": "Test CPU", "cpu_cores": 2, "memory_total_bytes": 24_000_000_000, "gpus": []},
               resume=False)
    for p in points:
        store.append(p)
    for i in range(failed):
        store.append({"key": f"b64-kvdefault-t2-r{i + 1}", "config": {"max_batch": 64, "replicas": i + 1},
                      "status": "failed", "reason": "engine exited with status 1"})
    return directory


@pytest.fixture(scope="session")
def cpu_sweep(tmp_path_factory) -> Path:
    """Read-only: tests write their reports elsewhere."""
    points = [make_point(b, t) for b, t in THROUGHPUT.items()]
    points += [make_point(1, 135.0, replicas=2, threads=1), make_point(8, 160.0, replicas=2, threads=1)]
    return write_sweep(tmp_path_factory.mktemp("cpu") / "sweep", points, failed=1)


@pytest.fixture
def advice() -> dict:
    return sample_advice()


@pytest.fixture(scope="session")
def full_report(cpu_sweep, tmp_path_factory) -> ReportFiles:
    """The report of cpu_sweep with sample_advice, written once for the tests that only read it."""
    return write_report(cpu_sweep, tmp_path_factory.mktemp("full") / "report.html", advice=sample_advice(),
                        config=FAST)


def sample_advice() -> dict:
    """`advise --json` as the report reads it."""
    return {
        "b_opt": 16,
        "slo": {"text": "mean_tpot_ms <= 120 (3 x mean_tpot_ms at B=4)", "terms": [
            {"field": "mean_tpot_ms", "limit_ms": 120.0}]},
        "rejected": [{"max_batch": 32, "reason": "mean_tpot_ms 116 ms within the SLO but efficiency 0.10 < 0.2"}],
        "throughput_fraction_at_b_opt": 250.0 / 275.0,
        "kv_need_bytes": 40_000_000, "kv_need_fraction": 40_000_000 / 24e9,
        "freed_bytes": 560_000_000, "freed_fraction": 560_000_000 / 24e9,
        "weights_bytes": 250_000_000, "device_memory_bytes": 24_000_000_000,
        "pareto": {},
        "replica_plan": {"replicas": 2, "max_batch": 16, "predicted_or_measured": "predicted",
                         "output_throughput": 300.0, "mean_tpot_ms": 100.0},
        "commands": {"paretoserve engine": "paretoserve engine --max-batch 16 --kv-tokens 2576",
                     "llama-server": "llama-server -m model.gguf -np 16 -c 2576"},
    }
