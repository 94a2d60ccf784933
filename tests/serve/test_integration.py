"""Two replicas of the real engine on the bundled model behind the router: the bench client, and a replica killed
under greedy streams."""

import asyncio
import json
import os
import signal

import aiohttp
import httpx
import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.model import resolve_model
from paretoserve.serve import ReplicaServer, ServeConfig
from tests.conftest import HEALTH_TIMEOUT_S
from tests.waiting import HANG_S

pytestmark = pytest.mark.integration


def test_two_pinned_replicas_of_the_real_engine_serve_through_the_router():
    plan = ServeConfig(replicas=2, threads_per_replica=1, max_batch=2, ctx_per_seq=64,
                       model=str(resolve_model("default").path))
    with ReplicaServer(plan) as server:
        server.wait_healthy(HEALTH_TIMEOUT_S)
        chat = httpx.post(server.base_url + "/v1/chat/completions", timeout=HANG_S,
                          json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        bench = BenchConfig(url=server.base_url, input_tokens=TokenRange(8, 8), output_tokens=TokenRange(8, 8),
                            requests=8, concurrency=4, energy="none", engine_pids=server.pids)
        result = asyncio.run(run_bench(bench))
        metrics = httpx.get(server.base_url + "/metrics", timeout=HANG_S).text
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] == 4
    assert result["completed"] == 8 and result["failed"] == 0
    assert result["server"]["paretoserve"] is True and result["prompts"] == "token ids"
    assert result["total_output_tokens"] == 64
    for replica in ("0", "1"):
        assert f'paretoserve_router_requests_total{{code="200",replica="{replica}"}}' in metrics
    assert 'paretoserve_max_batch{model_name="gemma-3-270m-q4_k_m",replica="1"} 2.0' in metrics


async def _greedy_streams(url: str, bodies: list[tuple[str, dict]], on_event) -> list[dict]:
    """Stream every (path, body) at once; each result has its replica, text, usage events and errors."""
    async def one(session: aiohttp.ClientSession, i: int, path: str, body: dict) -> dict:
        result = {"replica": None, "text": "", "usages": [], "errors": [], "done": False}
        async with session.post(url + path, json=body) as response:
            result["replica"] = response.headers.get("x-paretoserve-replica")
            async for line in response.content:
                payload = line.decode().strip()[len("data: "):]
                if payload == "[DONE]":
                    result["done"] = True
                elif payload:
                    event = json.loads(payload)
                    result["errors"] += [event["error"]] if "error" in event else []
                    result["usages"] += [event["usage"]] if event.get("usage") else []
                    for choice in event.get("choices") or []:
                        result["text"] += choice.get("text") or choice.get("delta", {}).get("content") or ""
                        on_event(i)
        return result

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HANG_S)) as session:
        return await asyncio.gather(*(one(session, i, path, body) for i, (path, body) in enumerate(bodies)))


def test_greedy_streams_survive_a_replica_killed_with_sigkill_mid_run():
    plan = ServeConfig(replicas=2, threads_per_replica=1, max_batch=8, ctx_per_seq=128,
                       model=str(resolve_model("default").path))
    common = {"max_tokens": 40, "temperature": 0, "ignore_eos": True, "stream": True,
              "stream_options": {"include_usage": True}}
    kinds = [("/v1/completions", {"prompt": "The history of the city begins"}),
             ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell me about the city"}]})]
    bodies = [(path, {**common, **kind}) for path, kind in kinds] * 4  # 8 at once: 4 on each replica
    with ReplicaServer(plan) as server:
        server.wait_healthy(HEALTH_TIMEOUT_S)
        prompt_tokens = {path: httpx.post(server.base_url + path, json={**kind, "max_tokens": 1}, timeout=HANG_S)
                         .json()["usage"]["prompt_tokens"] for path, kind in kinds}
        victim, events, killed = server.replica_pids[0], [0] * len(bodies), []

        def on_event(i: int) -> None:
            events[i] += 1
            if not killed and min(events) >= 4:  # every stream is mid-response: kill one replica under them
                os.kill(victim, signal.SIGKILL)
                killed.append(list(events))

        results = asyncio.run(_greedy_streams(server.base_url, bodies, on_event))
        metrics = httpx.get(server.base_url + "/metrics", timeout=HANG_S).text
    assert killed and max(killed[0]) < common["max_tokens"]
    on_victim = sum(r["replica"] == "0" for r in results)
    assert on_victim == 4
    for (path, _), r in zip(bodies, results, strict=True):
        assert r["errors"] == [] and r["done"], r
        assert r["usages"] == [{"prompt_tokens": prompt_tokens[path], "completion_tokens": common["max_tokens"],
                                "total_tokens": prompt_tokens[path] + common["max_tokens"]}]
        assert r["text"]
    assert f"paretoserve_router_resumes_total {float(on_victim)}" in metrics
