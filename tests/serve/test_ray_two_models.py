"""Two real models in one Ray Serve application: `paretoserve serve --backend ray --model default --model smollm2`
(the bundled Gemma 3 270M and SmolLM2 135M, the smollm2 extra), one deployment each behind the ingress, answering by
name through Ray's proxy."""

from __future__ import annotations

import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from paretoserve.engine_process import wait_until
from tests.waiting import HANG_S

pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")

from paretoserve.serve.ray_replica import REPLICA_HEADER  # noqa: E402
from tests.serve.test_ray_backend import RayServe  # noqa: E402

pytestmark = pytest.mark.integration

GEMMA, SMOL = "gemma-3-270m-q4_k_m", "SmolLM2-135M-Instruct.Q4_1"
KEY = {"Authorization": "Bearer client-key"}
# Small: one replica of batch cap 2 and one thread per model, so that both fit this 2-core machine beside the test.
PLAN = ("--model", "default", "--model", "smollm2", "--replicas", "1", "--max-batch", "2", "--threads-per-replica",
        "1", "--ctx-per-seq", "64", "--api-key", "client-key",
        *(() if len(os.sched_getaffinity(0)) >= 2 else ("--no-pin",)))


def _samples(metrics: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(metrics) for s in family.samples if s.name == name]


def _aborted(url: str, model: str) -> bool:
    """Whether a request of `model` was dropped by its engine (its client left), from the ingress's /metrics."""
    metrics = httpx.get(url + "/metrics", timeout=HANG_S, headers=KEY).text
    return any(s.labels.get("model") == model and s.labels.get("finished_reason") == "abort"
               for s in _samples(metrics, "paretoserve_requests_finished_total"))


def test_one_ray_application_serves_both_models_by_name(smollm2_gguf):
    with RayServe(*PLAN) as ray:
        url = ray.url
        replicas = {name: ray.processes(f"EngineReplica-{i}") for i, name in enumerate((GEMMA, SMOL))}
        pinned = {name: [tuple(p.cpu_affinity()) for p in found] for name, found in replicas.items()}

        def post(path: str, body: dict, headers: dict = KEY) -> httpx.Response:
            return httpx.post(url + path, json=body, timeout=HANG_S, headers=headers)

        chat = {"temperature": 0, "max_tokens": 4, "messages": [{"role": "user", "content": "Capital of France?"}]}
        answers = {name: post("/v1/chat/completions", {**chat, "model": name}) for name in (SMOL, GEMMA)}
        first = post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})  # no model: the first one
        streamed = post("/v1/completions", {"model": SMOL, "prompt": "One, two,", "max_tokens": 4, "stream": True})
        unknown = post("/v1/completions", {"model": "llama", "prompt": "x", "max_tokens": 1})
        refused = post("/v1/completions", {"prompt": "x", "max_tokens": 1}, headers={})
        listed = httpx.get(url + "/v1/models", timeout=HANG_S, headers=KEY).json()["data"]
        health = httpx.get(url + "/health", timeout=HANG_S)
        metrics = httpx.get(url + "/metrics", timeout=HANG_S, headers=KEY).text
        # A client that leaves mid-stream: its model's engine drops the request.
        with httpx.stream("POST", url + "/v1/completions", headers=KEY, timeout=HANG_S,
                          json={"model": GEMMA, "prompt": "Count:", "max_tokens": 48, "ignore_eos": True,
                                "stream": True}) as leaving:
            next(leaving.iter_raw())
        assert wait_until(lambda: _aborted(url, GEMMA), HANG_S), "the engine kept generating for a client that left"
        status = ray.terminate()
    assert status == 0, ray.proc.output_tail()
    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == name and answer.json()["usage"]["completion_tokens"] >= 1
    served_by = {name: answers[name].headers[REPLICA_HEADER.decode()].split()[0] for name in answers}
    assert served_by[GEMMA] != served_by[SMOL]  # each model's own deployment answered
    assert first.status_code == 200 and first.json()["model"] == GEMMA
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert f'"model": "{SMOL}"' in streamed.text
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert f"(served: '{GEMMA}', '{SMOL}')" in unknown.json()["error"]["message"]
    assert refused.status_code == 401  # the ingress checks the clients' keys
    assert [m["id"] for m in listed] == [GEMMA, SMOL] and listed[0]["max_model_len"] == 64
    assert health.status_code == 200
    labels = {(s.labels["model"], s.labels["replica"]) for s in _samples(metrics, "paretoserve_max_batch")}
    assert labels == {(GEMMA, served_by[GEMMA]), (SMOL, served_by[SMOL])}  # every replica's, labelled by model
    assert [len(found) for found in replicas.values()] == [1, 1]
    if "--no-pin" not in PLAN:
        assert pinned[GEMMA] != pinned[SMOL]  # each model on cores of its own
    print(f"ray backend, two models: up in {ray.up_s:.1f} s, stopped {ray.stop_s:.1f} s after SIGTERM")
