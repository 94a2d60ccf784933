"""One router over the replicas of several models (in-process fakes): routing by `model`, the 404 naming the served
models, /v1/models, metrics labelled by model and replica, failover and resume within a model only."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from paretoserve.engine_process import free_port
from paretoserve.serve.backends import StaticReplica
from tests.bench.fake_server import FakeServer
from tests.fakes.token_replica import TokenReplica
from tests.serve.helpers import get, post, running_router

pytestmark = pytest.mark.integration

GREEDY = {"prompt": "hello", "max_tokens": 12, "temperature": 0, "stream": True}


class NamedFake(FakeServer):
    """A fake replica that lists its model under `name`, as an engine lists the model it serves."""

    def __init__(self, name: str, **config) -> None:
        super().__init__(**config)
        self.name = name

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model", "owned_by": "fake",
                                                         "max_model_len": 512}]})


@pytest.fixture(scope="module")
def two_models():
    """Model 'alpha' on replica 0, 'beta' on replica 1, one fake each, behind one router."""
    with NamedFake("alpha") as a, NamedFake("beta") as b, \
            running_router({"alpha": [StaticReplica(0, a.url)], "beta": [StaticReplica(1, b.url)]}) as url:
        yield a, b, url


@pytest.fixture
def fresh(two_models):
    for fake in two_models[:2]:
        fake.state.bodies.clear()
    return two_models


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels`, from Prometheus text; None where none has."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


def test_each_request_goes_to_the_model_it_names(fresh):
    a, b, url = fresh
    to_beta = post(url + "/v1/completions", json={"model": "beta", "prompt": "x", "max_tokens": 2})
    to_alpha = post(url + "/v1/chat/completions", json={"model": "alpha", "max_tokens": 2, "stream": True,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert (to_beta.status_code, to_beta.headers["x-paretoserve-replica"]) == (200, "1")
    assert (to_alpha.status_code, to_alpha.headers["x-paretoserve-replica"]) == (200, "0")
    assert to_alpha.text.rstrip().endswith("data: [DONE]")
    assert [body["model"] for body in b.state.bodies] == ["beta"] and [body["model"] for body in a.state.bodies] == \
        ["alpha"]


def test_no_model_or_default_is_the_first_one(fresh):
    a, b, url = fresh
    for body in ({"prompt": "x", "max_tokens": 1}, {"model": "default", "prompt": "x", "max_tokens": 1}):
        assert post(url + "/v1/completions", json=body).headers["x-paretoserve-replica"] == "0"
    assert len(a.state.bodies) == 2 and b.state.bodies == []


def test_any_other_model_is_a_404_naming_the_served_ones_and_reaches_no_replica(fresh):
    a, b, url = fresh
    response = post(url + "/v1/completions", json={"model": "gamma", "prompt": "x", "max_tokens": 1})
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "model 'gamma' is not served here (served: 'alpha', 'beta')",
                                         "type": "invalid_request_error", "param": "model",
                                         "code": "model_not_found"}}
    assert a.state.bodies == [] and b.state.bodies == []
    assert _sample(get(url + "/metrics").text, "paretoserve_router_refused_total", reason="model_not_found") >= 1


def test_models_lists_every_model_as_its_replicas_list_it(fresh):
    _, _, url = fresh
    listed = get(url + "/v1/models").json()
    assert listed["object"] == "list"
    assert [(m["id"], m["owned_by"], m["max_model_len"]) for m in listed["data"]] == \
        [("alpha", "fake", 512), ("beta", "fake", 512)]
    assert get(url + "/v1/models/beta").json()["id"] == "beta"
    assert get(url + "/v1/models/default").json()["id"] == "alpha"
    missing = get(url + "/v1/models/gamma")
    assert missing.status_code == 404 and "(served: 'alpha', 'beta')" in missing.json()["error"]["message"]


def test_metrics_are_labelled_by_model_and_replica(fresh):
    _, _, url = fresh
    post(url + "/v1/completions", json={"model": "beta", "prompt": "x", "max_tokens": 1})
    text = get(url + "/metrics").text
    assert _sample(text, "paretoserve_router_requests_total", model="beta", replica="1", code="200") >= 1
    assert _sample(text, "paretoserve_router_request_seconds_count", model="beta", endpoint="completions") >= 1
    assert _sample(text, "paretoserve_router_replica_healthy", model="alpha", replica="0") == 1.0
    # each replica's own metrics, under the engine's names, with both labels added
    assert _sample(text, "paretoserve_max_batch", model="alpha", replica="0", model_name="fake") == 8.0
    assert _sample(text, "paretoserve_max_batch", model="beta", replica="1") == 8.0
    health = get(url + "/health").json()
    assert [(r["replica"], r["model"]) for r in health["replicas"]] == [(0, "alpha"), (1, "beta")]
    assert health["models"] == [{"model": "alpha", "healthy_replicas": 1, "replicas": 1},
                                {"model": "beta", "healthy_replicas": 1, "replicas": 1}]


def test_a_failed_replica_is_retried_on_its_own_model_only():
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    with NamedFake("alpha") as a, NamedFake("beta") as b, \
            running_router({"alpha": [StaticReplica(0, dead), StaticReplica(1, a.url)],
                            "beta": [StaticReplica(2, b.url)]}) as url:
        answers = [post(url + "/v1/completions", json={"model": "alpha", "prompt": "x", "max_tokens": 1})
                   for _ in range(3)]
        alone = post(url + "/v1/completions", json={"model": "beta", "prompt": "x", "max_tokens": 1})
        metrics = get(url + "/metrics").text
    assert [(r.status_code, r.headers["x-paretoserve-replica"]) for r in answers] == [(200, "1")] * 3
    assert len(a.state.bodies) == 3 and [body["model"] for body in b.state.bodies] == ["beta"]
    assert alone.headers["x-paretoserve-replica"] == "2"
    assert _sample(metrics, "paretoserve_router_retries_total", model="alpha") >= 1
    assert _sample(metrics, "paretoserve_router_retries_total", model="beta") is None


def test_a_model_with_no_replica_left_fails_alone():
    down = StaticReplica(0, f"http://127.0.0.1:{free_port()}")  # nothing listens there: connection refused
    with NamedFake("beta") as b, running_router({"alpha": [down], "beta": [StaticReplica(1, b.url)]}) as url:
        failed = post(url + "/v1/completions", json={"model": "alpha", "prompt": "x", "max_tokens": 1})
        down.healthy = False  # as the supervisor marks it once its health checks fail
        refused = post(url + "/v1/completions", json={"model": "alpha", "prompt": "x", "max_tokens": 1})
        served = post(url + "/v1/completions", json={"model": "beta", "prompt": "x", "max_tokens": 1})
        listed = [m["id"] for m in get(url + "/v1/models").json()["data"]]
        health = get(url + "/health")
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "replica_failed"
    assert refused.status_code == 503 and "no healthy replica of model 'alpha'" in refused.json()["error"]["message"]
    assert served.status_code == 200 and len(b.state.bodies) == 1  # never the other model's replica
    assert listed == ["alpha", "beta"]  # still served: its entry is the router's own until a replica answers
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["models"][0] == {"model": "alpha", "healthy_replicas": 0, "replicas": 1}


def test_a_greedy_stream_resumes_on_its_own_model():
    alpha = [TokenReplica(die_after=2), TokenReplica(die_after=2)]
    beta = TokenReplica(die_after=2)
    with alpha[0], alpha[1], beta, running_router({"alpha": [StaticReplica(0, alpha[0].url),
                                                             StaticReplica(1, alpha[1].url)],
                                                   "beta": [StaticReplica(2, beta.url)]}) as url:
        response = post(url + "/v1/completions", json={**GREEDY, "model": "alpha"})
        metrics = get(url + "/metrics").text
    texts = [json.loads(line[6:])["choices"][0]["text"] for line in response.text.splitlines()
             if line.startswith("data: {") and '"choices": [{' in line]
    assert "".join(texts) == "".join(f"t{i} " for i in range(12))
    assert len(alpha[0].bodies) + len(alpha[1].bodies) == 2 and beta.bodies == []
    assert _sample(metrics, "paretoserve_router_resumes_total", model="alpha") == 1.0


def test_a_stream_of_a_model_with_one_replica_is_not_resumed_on_another_model():
    alpha, beta = TokenReplica(die_after=2), TokenReplica()
    with alpha, beta, running_router({"alpha": [StaticReplica(0, alpha.url)],
                                      "beta": [StaticReplica(1, beta.url)]}) as url:
        response = post(url + "/v1/completions", json={**GREEDY, "model": "alpha"})
    assert '"code": "replica_failed"' in response.text and response.text.rstrip().endswith("data: [DONE]")
    assert len(alpha.bodies) == 1 and beta.bodies == []
