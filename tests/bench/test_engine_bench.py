"""`paretoserve bench` against the real embedded engine on the bundled model."""

from __future__ import annotations

import asyncio

import pytest

from paretoserve.bench import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
from tests.conftest import HEALTH_TIMEOUT_S

pytestmark = pytest.mark.integration


def test_exact_output_lengths_against_the_engine():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = embedded_engine_cmd(port, "127.0.0.1", "--max-batch", "4", "--ctx-per-seq", "256")
    with EngineProcess(cmd, url) as engine:
        engine.wait_healthy(HEALTH_TIMEOUT_S)
        cfg = BenchConfig(url=url, requests=8, concurrency=4, input_tokens=TokenRange(24, 24),
                          output_tokens=TokenRange(16, 16), sample_interval_s=0.2)
        result = asyncio.run(run_bench(cfg))
        engine_pid = engine.proc.pid
    assert result["server"]["paretoserve"] and result["prompts"] == "token ids"
    assert (result["completed"], result["failed"]) == (8, 0)
    assert [(r["input_tokens"], r["output_tokens"]) for r in result["requests"]] == [(24, 16)] * 8
    assert result["total_output_tokens"] == 128
    busy = ("client", "other processes", "hypervisor")  # what a busy machine may flag
    assert [w for w in result["warnings"] if not any(b in w for b in busy)] == []
    assert result["other_cpu_cores"] is not None and result["cpu_steal_fraction"] is not None
    assert result["config"]["engine_pids"] == [engine_pid]  # found through the listening port
    assert result["energy_source"] == "estimated" and result["energy_j"] > 0
    assert result["rss_peak_bytes"] > 200 * 2**20  # the weights alone are ~235 MiB mapped
    assert result["max_batch"] == 4 and 0 < result["max_running"] <= 4
    assert result["kv_peak_fraction"] > 0
    assert result["mean_tpot_ms"] > 0 and result["steady_state"]["slots"] == 4
