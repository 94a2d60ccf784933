"""Several models on Ray Serve: the builder's `models` args (serve/ray_plan.py, serve/ray_replica.py), one deployment
per model behind the ingress that routes by model (serve/ray_ingress.py), requests carried over a handle
(serve/ray_asgi.py). The ingress runs here in-process over fake handles; tests/serve/test_ray_two_models.py runs the
whole application with two real models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from paretoserve.cli import main
from paretoserve.serve.config import PlanError

pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")

from ray.exceptions import RayError  # noqa: E402
from ray.serve._private.build_app import build_app  # noqa: E402
from ray.serve.exceptions import BackPressureError  # noqa: E402

from paretoserve.openai_api.auth import ApiKeys  # noqa: E402
from paretoserve.serve.ray_asgi import HandleRequest, answer  # noqa: E402
from paretoserve.serve.ray_ingress import INGRESS_NAME, ingress_app  # noqa: E402
from paretoserve.serve.ray_plan import RayModels, RayPlan  # noqa: E402
from paretoserve.serve.ray_replica import DEPLOYMENT_NAME, build, replica_cores  # noqa: E402

GEMMA = "gemma-3-270m-q4_k_m"  # the bundled model's served name


@pytest.fixture
def other_gguf(tmp_path) -> Path:
    """A file the builder takes for a GGUF (it only names the model: nothing loads it here)."""
    path = tmp_path / "other-model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def test_each_model_is_a_deployment_of_its_own_behind_the_ingress(other_gguf):
    args = {"models": [{"replicas": 2, "max_batch": 4, "ctx_per_seq": 64},
                       {"model": str(other_gguf), "max_batch": 8, "threads_per_replica": 2, "max_queued_requests": 10}],
            "api_key_digests": ["ab" * 32]}
    built = build_app(build(args), name="paretoserve")
    assert built.ingress_deployment_name == INGRESS_NAME
    deployments = {d.name: d for d in built.deployments}
    assert sorted(deployments) == [f"{DEPLOYMENT_NAME}-0", f"{DEPLOYMENT_NAME}-1", INGRESS_NAME]
    first, second, ingress = deployments[f"{DEPLOYMENT_NAME}-0"], deployments[f"{DEPLOYMENT_NAME}-1"], \
        deployments[INGRESS_NAME]
    assert (first.num_replicas, first.max_ongoing_requests, first.ray_actor_options["num_cpus"]) == (2, 4, 1)
    assert (second.num_replicas, second.max_ongoing_requests, second.max_queued_requests) == (1, 8, 10)
    assert second.ray_actor_options["num_cpus"] == 2
    # each model's replica gets its plan and the name it is served under; the second pins past the first's 2 cores
    assert first.init_args == ({"replicas": 2, "max_batch": 4, "ctx_per_seq": 64}, GEMMA)
    assert second.init_args[0]["core_offset"] == 2 and second.init_args[1] == "other-model"
    # the ingress holds whatever is in flight or queued for any model (2 x 4 + 1024, 1 x 8 + 10), on no core
    assert ingress.max_ongoing_requests == 2 * 4 + 1024 + 8 + 10 and ingress.ray_actor_options["num_cpus"] == 0
    assert ingress.init_args[1:] == (("ab" * 32,), False)  # the clients' keys: the ingress checks them


def test_one_models_args_still_build_one_deployment_that_is_the_ingress():
    built = build_app(build(RayPlan(replicas=2, max_batch=4).args()), name="paretoserve")
    assert [d.name for d in built.deployments] == [DEPLOYMENT_NAME] == [built.ingress_deployment_name]


def test_several_models_args_are_checked_naming_the_model(other_gguf):
    with pytest.raises(PlanError, match=r"models\[1\]: unknown field\(s\) batch"):
        build({"models": [{}, {"batch": 8}]})
    with pytest.raises(PlanError, match=r"models\[0\]: api_key_digests belong beside models"):
        build({"models": [{"api_key_digests": []}]})
    with pytest.raises(PlanError, match="non-empty list"):
        build({"models": []})
    with pytest.raises(PlanError, match="unknown field.*replicas beside models"):
        build({"models": [{}], "replicas": 2})
    with pytest.raises(PlanError, match="--max-batch"):
        build({"models": [{}, {"model": str(other_gguf), "max_batch": 0}]})
    with pytest.raises(PlanError, match="given twice"):  # a request could not tell them apart
        build({"models": [{}, {"replicas": 2}]})


def test_serve_checks_several_models_for_ray_as_for_the_router_before_ray_starts(capsys):
    assert main(["serve", "--backend", "ray", "--model", "default", "--model", "default", "--port", "0"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["serve", "--backend", "ray", "--model", "default", "--model", "default", "--replicas", "1,2,3",
                 "--port", "0"]) == 2
    assert "--replicas: 3 values for 2 model(s)" in capsys.readouterr().err


def test_later_models_pin_past_the_cores_of_the_models_before_them():
    models = RayModels((RayPlan(replicas=2, threads_per_replica=1), RayPlan(replicas=1, threads_per_replica=2),
                        RayPlan(replicas=1)))
    assert [plan.core_offset for plan in models.placed()] == [0, 2, 4]
    cores = list(range(6))
    assert [replica_cores(rank, 1, cores, 0) for rank in range(2)] == [(0,), (1,)]
    assert replica_cores(0, 2, cores, 2) == (2, 3) and replica_cores(0, 1, cores, 4) == (4,)
    assert replica_cores(0, 2, [0, 1], 2) == (0, 1)  # past a full node it wraps round, as one model's replicas do
    assert RayModels.from_args(models.args()).plans == models.plans


def fake_model(name: str, healthy: bool = True) -> Starlette:
    """A model's app: its name in every answer, a three-event stream, its own entry in /v1/models."""

    async def completions(request: Request):
        body = await request.json()
        if body.get("stream"):
            async def events():
                for i in range(3):
                    yield f"data: {json.dumps({'model': name, 'i': i})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse({"model": name, "asked": body.get("model")})

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "max_model_len": 64}]})

    async def health(request: Request):
        return JSONResponse({"status": "ok" if healthy else "loading"}, status_code=200 if healthy else 503)

    return Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                             Route("/v1/chat/completions", completions, methods=["POST"]),
                             Route("/v1/models", models), Route("/health", health)])


class FakeStream:
    """What a streaming handle call returns: the batches of ASGI messages, and cancel()."""

    def __init__(self, batches, fail: str | None = None, refuse: Exception | None = None) -> None:
        """fail: `first` (no batch comes), `midway` (the response's start and its first chunk, then none)."""
        self.batches, self.fail, self.refuse = batches, fail, refuse
        self.given = 0
        self.cancelled = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.refuse is not None:
            raise self.refuse
        if self.fail == "first" or (self.fail == "midway" and self.given):
            raise RayError("the replica's actor died")
        self.given += 1
        batch = await self.batches.__anext__()
        return batch[:2] if self.fail == "midway" else batch

    def cancel(self) -> None:
        self.cancelled = True


class FakeHandle:
    """A model deployment's handle that answers in-process through ray_asgi.answer, as ModelReplica does."""

    def __init__(self, app: Starlette, **stream) -> None:
        self.app, self.stream = app, stream
        self.streams: list[FakeStream] = []
        self.answer = self  # handle.answer.remote(request)

    def options(self, stream: bool) -> FakeHandle:
        assert stream
        return self

    def remote(self, request: HandleRequest) -> FakeStream:
        self.streams.append(FakeStream(answer(self.app, request), **self.stream))
        return self.streams[-1]


def client(**handles: FakeHandle) -> TestClient:
    return TestClient(ingress_app(handles))


def test_the_ingress_routes_by_model_and_answers_any_other_with_a_404_naming_the_served_ones():
    web = client(**{GEMMA: FakeHandle(fake_model(GEMMA)), "smol": FakeHandle(fake_model("smol"))})
    ask = {"prompt": "Hi", "max_tokens": 2}
    assert web.post("/v1/completions", json={**ask, "model": "smol"}).json() == {"model": "smol", "asked": "smol"}
    assert web.post("/v1/completions", json=ask).json()["model"] == GEMMA  # no model: the first
    assert web.post("/v1/completions", json={**ask, "model": "default"}).json()["model"] == GEMMA
    chat = web.post("/v1/chat/completions", json={"model": "smol", "messages": [{"role": "user", "content": "Hi"}]})
    assert chat.json()["model"] == "smol"
    missing = web.post("/v1/completions", json={**ask, "model": "llama"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found" and missing.json()["error"]["param"] == "model"
    assert f"'{GEMMA}', 'smol'" in missing.json()["error"]["message"]
    malformed = web.post("/v1/completions", json={"model": "smol", "max_tokens": 2})
    assert malformed.status_code == 400 and malformed.json()["error"]["param"] == "prompt"  # never reaches a model


def test_the_ingress_lists_every_model_as_its_replica_does_and_says_which_are_healthy():
    web = client(**{GEMMA: FakeHandle(fake_model(GEMMA)), "smol": FakeHandle(fake_model("smol", healthy=False))})
    listed = web.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == [GEMMA, "smol"] and listed[0]["max_model_len"] == 64
    assert web.get("/v1/models/default").json()["id"] == GEMMA
    assert web.get("/v1/models/smol").json()["id"] == "smol"
    assert web.get("/v1/models/llama").status_code == 404
    health = web.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["models"] == [{"model": GEMMA, "healthy": True}, {"model": "smol", "healthy": False}]


def test_a_stream_is_relayed_whole_and_a_replica_that_fails_mid_stream_ends_it_with_an_error_event():
    whole = client(smol=FakeHandle(fake_model("smol")))
    events = whole.post("/v1/completions", json={"prompt": "Hi", "stream": True}).text.split("\n\n")
    assert [json.loads(e[6:])["i"] for e in events[:3]] == [0, 1, 2] and events[3] == "data: [DONE]"
    cut = FakeHandle(fake_model("smol"), fail="midway")
    answer = client(smol=cut).post("/v1/completions", json={"prompt": "Hi", "stream": True})
    assert answer.status_code == 200
    events = answer.text.strip().split("\n\n")
    assert json.loads(events[0][6:])["i"] == 0  # what came before the failure
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "replica_failed" and "model 'smol'" in error["message"]
    assert answer.text.endswith("data: [DONE]\n\n")


def test_a_model_whose_queue_is_full_is_a_503_with_retry_after_and_a_dead_replica_a_502():
    full = client(smol=FakeHandle(fake_model("smol"), refuse=BackPressureError(num_queued_requests=4,
                                                                              max_queued_requests=4)))
    refused = full.post("/v1/completions", json={"prompt": "Hi"})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "queue_full"
    dead = client(smol=FakeHandle(fake_model("smol"), fail="first"))
    failed = dead.post("/v1/completions", json={"prompt": "Hi"})
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "replica_failed"


def test_the_ingress_checks_the_clients_keys():
    web = TestClient(ingress_app({"smol": FakeHandle(fake_model("smol"))}, ApiKeys.of(["client-key"])))
    assert web.post("/v1/completions", json={"prompt": "Hi"}).status_code == 401
    good = web.post("/v1/completions", json={"prompt": "Hi"}, headers={"Authorization": "Bearer client-key"})
    assert good.status_code == 200


def test_a_caller_that_leaves_makes_the_app_see_its_client_disconnect():
    seen: list[str] = []

    async def endless(scope, receive, send):
        await receive()  # the body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 0\n\n", "more_body": True})
        seen.append((await receive())["type"])  # what a streaming engine waits for between tokens

    async def leave_after_first_batch() -> list:
        messages = answer(endless, HandleRequest("POST", "/v1/completions", body=b"{}"))
        first = await messages.__anext__()
        await messages.aclose()
        return first

    first = asyncio.run(leave_after_first_batch())
    assert [m["type"] for m in first] == ["http.response.start", "http.response.body"]
    assert seen == ["http.disconnect"]
