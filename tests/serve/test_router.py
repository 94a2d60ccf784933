"""The router in this process over in-process fake servers: relay, validation, retries, balancing, metrics.

Where a test needs a replica to stay silent, or requests to overlap, the fake server holds them on an event
(FakeServer's `hold`, `hold_rest`, `together`) instead of sleeping long enough on a quiet machine."""

import json
import threading

import httpx
import pytest

from paretoserve.bench.sampler import parse_metrics
from paretoserve.engine_process import free_port
from paretoserve.serve.backends import StaticReplica
from tests.bench.fake_server import FakeServer
from tests.serve.helpers import get, post, running_router, sent_and_left
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

BODY = {"prompt": "hello there", "max_tokens": 3}


@pytest.fixture(scope="module")
def shared():
    """One fake server behind one router, for the tests that need nothing special (its bodies are cleared)."""
    with FakeServer() as fake, running_router([StaticReplica(0, fake.url)], max_body_bytes=4096) as url:
        yield fake, url


@pytest.fixture
def single(shared):
    shared[0].state.bodies.clear()
    return shared


def _events(text: str) -> list:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_plain_and_streamed_answers_are_relayed(single):
    fake, url = single
    plain = post(url + "/v1/completions", json=BODY)
    streamed = post(url + "/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True,
                                "stream_options": {"include_usage": True}})
    assert plain.status_code == 200 and plain.headers["x-paretoserve-replica"] == "0"
    events = _events(streamed.text)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]" and json.loads(events[-2])["usage"]["completion_tokens"] == 2


def test_stream_chunks_reach_the_client_as_they_are_made():
    rest = threading.Event()  # the replica sends its first token, then nothing until this is set
    with FakeServer(hold_rest=rest) as fake, running_router([StaticReplica(0, fake.url)]) as url, \
            httpx.stream("POST", url + "/v1/completions", json={**BODY, "stream": True}, timeout=HANG_S) as response:
        lines = response.iter_lines()
        first = next(lines)  # a router that buffered would hang here (until HANG_S)
        rest.set()
        events = [first, *lines]
    assert json.loads(first[6:])["choices"][0]["text"] == "tok "
    assert _events("\n".join(events))[-1] == "[DONE]"


@pytest.mark.parametrize("content, param", [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (b'{"max_tokens": 3}', "prompt"),
    (b'{"prompt": ""}', "prompt"),
    (b'{"prompt": [1, "a"]}', "prompt"),
    (b'{"prompt": "x", "max_tokens": 0}', "max_tokens"),
    (b'{"prompt": "x", "stream": "yes"}', "stream"),
    (b'{"prompt": "x", "model": 3}', "model"),
    (b"[" * 2000 + b"]" * 2000, "body"),  # json.loads raised RecursionError: a 500
    (b'{"prompt": "x", "max_tokens": ' + b"[" * 500 + b"]" * 500 + b"}", "max_tokens"),
])
def test_malformed_bodies_never_reach_a_replica(single, content, param):
    fake, url = single
    before = _refused(url, "malformed")
    response = post(url + "/v1/completions", content=content)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fake.state.bodies == []
    assert _refused(url, "malformed") == before + 1


def _refused(url: str, reason: str) -> float:
    text = get(url + "/metrics").text
    name = f'paretoserve_router_refused_total{{reason="{reason}"}}'
    line = next((ln for ln in text.splitlines() if ln.startswith(name)), None)
    return float(line.split()[-1]) if line else 0.0


def test_chat_messages_are_checked(single):
    fake, url = single
    response = post(url + "/v1/chat/completions", json={"messages": [{"content": "no role"}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
    assert fake.state.bodies == []


def test_too_large_bodies_are_refused_declared_or_chunked(single):
    fake, url = single
    big = json.dumps({"prompt": "x" * 5000}).encode()
    declared = post(url + "/v1/completions", content=big)
    chunked = post(url + "/v1/completions", content=iter([big[:3000], big[3000:]]))
    assert declared.status_code == 413 and chunked.status_code == 413
    assert declared.json()["error"]["param"] == "body"
    assert fake.state.bodies == []


def test_a_busy_replica_is_retried_once_on_another():
    with FakeServer(fail_every=1, fail_status=503) as bad, FakeServer() as good, \
            running_router([StaticReplica(0, bad.url), StaticReplica(1, good.url)]) as url:
        answers = [post(url + "/v1/completions", json=BODY) for _ in range(6)]
        metrics = get(url + "/metrics").text
    assert all(a.status_code == 200 and a.headers["x-paretoserve-replica"] == "1" for a in answers)
    assert len(bad.state.bodies) >= 1
    assert "paretoserve_router_retries_total" in metrics


def test_when_every_replica_is_busy_the_last_answer_is_relayed():
    with FakeServer(fail_every=1, fail_status=503) as a, FakeServer(fail_every=1, fail_status=503) as b, \
            running_router([StaticReplica(0, a.url), StaticReplica(1, b.url)]) as url:
        response = post(url + "/v1/completions", json=BODY)
    assert response.status_code == 503 and "scripted failure" in response.text
    assert len(a.state.bodies) + len(b.state.bodies) == 2  # one try and one retry, no more


@pytest.mark.parametrize("status", [500, 504])
def test_a_500_or_504_is_relayed_without_a_retry(status):
    """A request that crashes its replica (500) would crash the next one too; a 504 would wait as long again."""
    with FakeServer(fail_every=1, fail_status=status) as a, FakeServer(fail_every=1, fail_status=status) as b, \
            running_router([StaticReplica(0, a.url), StaticReplica(1, b.url)]) as url:
        response = post(url + "/v1/completions", json=BODY)
        metrics = get(url + "/metrics").text
    assert response.status_code == status and "scripted failure" in response.text
    assert len(a.state.bodies) + len(b.state.bodies) == 1
    assert "paretoserve_router_retries_total 0.0" in metrics


def test_a_refused_connection_ejects_the_replica_and_retries():
    dead = StaticReplica(0, f"http://127.0.0.1:{free_port()}")
    with FakeServer() as good, running_router([dead, StaticReplica(1, good.url)]) as url:
        answers = [post(url + "/v1/completions", json=BODY) for _ in range(4)]
        health = get(url + "/health").json()
    assert [a.status_code for a in answers] == [200] * 4
    assert health["replicas"][0]["ejected"] is True and health["status"] == "degraded"


def test_a_silent_replica_is_a_504_not_retried_nor_ejected():
    with FakeServer(hold=threading.Event()) as slow, FakeServer(hold=threading.Event()) as other, \
            running_router([StaticReplica(0, slow.url), StaticReplica(1, other.url)], read_timeout_s=0.3) as url:
        response = post(url + "/v1/completions", json=BODY)  # both stay silent until the test ends
        health = get(url + "/health").json()
    assert response.status_code == 504 and response.json()["error"]["code"] == "replica_timeout"
    assert len(slow.state.bodies) + len(other.state.bodies) == 1  # waiting as long again elsewhere helps no one
    assert not any(r["ejected"] for r in health["replicas"]) and health["status"] == "ok"


def test_no_healthy_replica_is_a_503_with_retry_after():
    with FakeServer() as fake, running_router([StaticReplica(0, fake.url, healthy=False)]) as url:
        response = post(url + "/v1/completions", json=BODY)
        health = get(url + "/health")
        models = get(url + "/v1/models")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "no_replica"
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert models.status_code == 503
    assert fake.state.bodies == []


def test_least_outstanding_spreads_concurrent_requests():
    import concurrent.futures

    # The replicas answer nothing until all 6 requests reached them: the 6 are in flight together however slowly
    # they arrive, as a router under load sees them.
    hold = threading.Event()
    with FakeServer(hold=hold) as a, FakeServer(hold=hold) as b, \
            running_router([StaticReplica(0, a.url), StaticReplica(1, b.url)]) as url, \
            concurrent.futures.ThreadPoolExecutor(6) as pool:
        sent = [pool.submit(post, url + "/v1/completions", json={**BODY, "stream": True}) for _ in range(6)]
        wait_until(lambda: len(a.state.bodies) + len(b.state.bodies) == 6, "all 6 requests at the replicas")
        hold.set()
        answers = [future.result() for future in sent]
    assert all(a.status_code == 200 for a in answers)
    assert len(a.state.bodies) == len(b.state.bodies) == 3


@pytest.mark.parametrize("model_id", ["fake-model", "default"])
def test_models_retrieve_looks_in_a_replica_list(single, model_id):
    r = get(single[1] + f"/v1/models/{model_id}")
    assert r.status_code == 200 and r.json()["id"] == "fake-model"


def test_models_retrieve_of_another_model_is_an_openai_404(single):
    r = get(single[1] + "/v1/models/org/other-model")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_unknown_routes_and_the_openapi_document(single):
    r = get(single[1] + "/v1/embeddings")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    doc = get(single[1] + "/openapi.json").json()
    assert "/v1/models/{model_id}" in doc["paths"]
    assert "502" in doc["paths"]["/v1/completions"]["post"]["responses"]


def test_models_are_listed_by_a_replica(single):
    models = get(single[1] + "/v1/models").json()
    assert models["data"][0]["owned_by"] == "paretoserve"


def test_metrics_label_each_replica_and_sum_like_one_engine():
    with FakeServer(max_batch=8) as a, FakeServer(max_batch=8) as b, \
            running_router([StaticReplica(0, a.url), StaticReplica(1, b.url)]) as url:
        post(url + "/v1/completions", json=BODY)
        text = get(url + "/metrics").text
    assert 'paretoserve_max_batch{model_name="fake",replica="0"} 8.0' in text
    assert parse_metrics(text)["max_batch"] == 16
    assert "paretoserve_router_request_seconds_bucket" in text
    assert 'paretoserve_router_replica_healthy{replica="1"} 1.0' in text


def test_a_client_that_leaves_mid_stream_frees_the_replica():
    # The replica's stream never ends by itself: only the router dropping it ends it.
    with FakeServer(hold_rest=threading.Event()) as fake, running_router([StaticReplica(0, fake.url)]) as url:
        with httpx.stream("POST", url + "/v1/completions", json={**BODY, "stream": True}, timeout=HANG_S) as r:
            next(iter(r.iter_bytes()))
        wait_until(lambda: fake.state.running == 0, "the replica's stream dropped")
        wait_until(lambda: _outstanding(url) == 0, "the router's count of the request gone")


def test_a_client_that_gives_up_on_a_plain_answer_frees_the_replica():
    # The replica never answers by itself; the client leaves once the replica has the request, as one whose read
    # timeout expired does.
    with FakeServer(hold=threading.Event()) as fake, running_router([StaticReplica(0, fake.url)]) as url:
        with sent_and_left(url, "/v1/completions", BODY):
            wait_until(lambda: fake.state.running == 1, "the request at the replica")
        wait_until(lambda: fake.state.running == 0, "the replica's request dropped")
        wait_until(lambda: _outstanding(url) == 0, "the router's count of the request gone")
    assert len(fake.state.bodies) == 1


def _outstanding(url: str) -> int:
    return get(url + "/health").json()["replicas"][0]["outstanding"]


def test_an_unexpected_error_in_the_router_is_a_json_500_with_a_request_id(single, monkeypatch):
    fake, url = single

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug in the relay")

    monkeypatch.setattr("paretoserve.serve.relay.Relay.open", broken)
    response = post(url + "/v1/completions", json=BODY)
    error = response.json()["error"]
    assert response.status_code == 500 and error["code"] == "internal_error"
    assert response.headers["x-request-id"] in error["message"]
