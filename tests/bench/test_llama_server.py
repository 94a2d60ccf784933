"""`paretoserve bench` against a real llama-server (the `llama-server` extra) on the bundled model."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator

import pytest

from paretoserve.bench import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.engine_process import EngineProcess, free_port
from paretoserve.presets.knobs import EngineKnobs, PresetError
from paretoserve.presets.llama_server import LLAMA_SERVER, find_llama_server
from tests.conftest import HEALTH_TIMEOUT_S

pytestmark = pytest.mark.integration

SLOTS = 16
OUTPUT_TOKENS = 12


def llama_server_or_skip() -> None:
    try:
        find_llama_server()
    except PresetError as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def llama_server(metrics: bool = True) -> Iterator[str]:
    """llama-server as the preset starts it, on the bundled model with 16 slots of 128 tokens; yields its base URL
    once healthy. One thread: on 2 shared cores, two that wait on each other at every step made it 10x slower as
    soon as a core was busy. Without `metrics`, the preset's --metrics is taken out."""
    llama_server_or_skip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = LLAMA_SERVER.argv(EngineKnobs(model="default", port=port, max_batch=SLOTS, kv_tokens=SLOTS * 128,
                                        ctx_per_seq=None, threads=1, mem_fraction=0.9))
    with EngineProcess([a for a in cmd if metrics or a != "--metrics"], url) as engine:
        engine.wait_healthy(HEALTH_TIMEOUT_S)
        yield url


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with llama_server() as url:
        yield url


def bench(url: str, concurrency: int, requests: int) -> dict:
    """Sampled every 0.1 s: a run at concurrency 1 lasts about half a second on an idle machine."""
    cfg = BenchConfig(url=url, requests=requests, concurrency=concurrency, input_tokens=TokenRange(32, 32),
                      output_tokens=TokenRange(OUTPUT_TOKENS, OUTPUT_TOKENS), sample_interval_s=0.1)
    return asyncio.run(run_bench(cfg))


@pytest.mark.parametrize("concurrency", [1, 4, SLOTS])
def test_bench_loses_no_request_and_reads_the_servers_metrics(server_url, concurrency):
    result = bench(server_url, concurrency, requests=2 * concurrency)  # each worker reuses its connection once
    assert (result["completed"], result["failed"]) == (2 * concurrency, 0)  # before the fix: the second half lost
    assert result["total_output_tokens"] == 2 * concurrency * OUTPUT_TOKENS
    # llama-server closes every streamed response's connection: once one was dropped, no more are reused
    assert result["connection_retries"] <= concurrency
    assert 0 < result["max_running"] <= concurrency  # llamacpp:requests_processing
    assert result["mean_waiting"] is not None  # llamacpp:requests_deferred
    assert 0 < result["kv_peak_fraction"] < 1  # from /slots: busy slots' tokens over every slot's context
    assert not [w for w in result["warnings"] if "metrics" in w]


def test_without_metrics_bench_names_the_flag_once():
    with llama_server(metrics=False) as url:
        result = bench(url, concurrency=2, requests=2)
    assert result["failed"] == 0 and result["max_running"] is None
    flag = [w for w in result["warnings"] if "--metrics" in w]
    assert len(flag) == 1 and "HTTP 501" in flag[0]
