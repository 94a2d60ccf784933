"""Two replicas of the real engine on the bundled model behind the router, driven by the bench client."""

import asyncio

import httpx
import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.model import resolve_model
from paretoserve.serve import ReplicaPlan, ReplicaServer
from tests.conftest import HEALTH_TIMEOUT_S

pytestmark = pytest.mark.integration


def test_two_pinned_replicas_of_the_real_engine_serve_through_the_router():
    plan = ReplicaPlan(replicas=2, threads_per_replica=1, max_batch=2, ctx_per_seq=64,
                       model=str(resolve_model("default").path))
    with ReplicaServer(plan) as server:
        server.wait_healthy(HEALTH_TIMEOUT_S)
        chat = httpx.post(server.base_url + "/v1/chat/completions", timeout=120,
                          json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        bench = BenchConfig(url=server.base_url, input_tokens=TokenRange(8, 8), output_tokens=TokenRange(8, 8),
                            requests=8, concurrency=4, energy="none", engine_pids=server.pids)
        result = asyncio.run(run_bench(bench))
        metrics = httpx.get(server.base_url + "/metrics").text
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] == 4
    assert result["completed"] == 8 and result["failed"] == 0
    assert result["server"]["paretoserve"] is True and result["prompts"] == "token ids"
    assert result["total_output_tokens"] == 64
    for replica in ("0", "1"):
        assert f'paretoserve_router_requests_total{{code="200",replica="{replica}"}}' in metrics
    assert 'paretoserve_max_batch{model_name="gemma-3-270m-q4_k_m",replica="1"} 2.0' in metrics
