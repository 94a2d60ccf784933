"""Two real models behind one router: the bundled Gemma 3 270M and SmolLM2 135M (the smollm2 extra), each on its own
embedded engine, `paretoserve serve --model default --model smollm2` as a child process, routed by name."""

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.serve import ReplicaServer, ServeConfig
from tests.serve.helpers import get, post
from tests.waiting import HANG_S

pytestmark = pytest.mark.integration

GEMMA, SMOL = "gemma-3-270m-q4_k_m", "SmolLM2-135M-Instruct.Q4_1"
# Small: a batch of 2 and one thread each, so that the two engines fit this 2-core machine beside the test.
PLAN = dict(replicas=1, max_batch=2, ctx_per_seq=256, threads_per_replica=1, pin=len(os.sched_getaffinity(0)) >= 2)


def _generated(metrics: str, model: str) -> float:
    """The tokens a model's replicas generated, from the router's /metrics (labelled by model)."""
    return sum(s.value for family in text_string_to_metric_families(metrics) for s in family.samples
               if s.name == "paretoserve_generation_tokens_total" and s.labels.get("model") == model)


def test_one_router_serves_both_models_by_name(smollm2_gguf, tmp_path):
    plans = [ServeConfig(model="default", **PLAN), ServeConfig(model="smollm2", **PLAN)]
    with ReplicaServer(plans, log_path=tmp_path / "serve.log", log_dir=tmp_path / "logs") as server:
        server.wait_healthy(HANG_S)
        url = server.base_url
        listed = [m["id"] for m in get(url + "/v1/models").json()["data"]]
        answers = {name: post(url + "/v1/chat/completions",
                              json={"model": name, "temperature": 0, "max_tokens": 8,
                                    "messages": [{"role": "user", "content": "What is the capital of France?"}]})
                   for name in (SMOL, GEMMA)}
        streamed = post(url + "/v1/completions", json={"model": SMOL, "prompt": "One, two,", "max_tokens": 4,
                                                       "temperature": 0, "stream": True})
        unknown = post(url + "/v1/completions", json={"model": "llama", "prompt": "x", "max_tokens": 1})
        metrics = get(url + "/metrics").text
        health = get(url + "/health").json()
    assert listed == [GEMMA, SMOL]
    for name, replica in ((GEMMA, "0"), (SMOL, "1")):
        answer = answers[name]
        assert answer.status_code == 200 and answer.headers["x-paretoserve-replica"] == replica
        assert answer.json()["model"] == name and answer.json()["usage"]["completion_tokens"] >= 1
    assert streamed.status_code == 200 and streamed.headers["x-paretoserve-replica"] == "1"
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert unknown.status_code == 404
    assert f"(served: '{GEMMA}', '{SMOL}')" in unknown.json()["error"]["message"]
    assert _generated(metrics, GEMMA) >= 1 and _generated(metrics, SMOL) >= 2
    assert health["models"] == [{"model": GEMMA, "healthy_replicas": 1, "replicas": 1},
                                {"model": SMOL, "healthy_replicas": 1, "replicas": 1}]
