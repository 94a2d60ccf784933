"""Per-client limits through the router: past its cap a client gets the 429 while another is served, and its
count goes back to zero on every path a request can end by.

Requests stay in flight because the fake replica holds them on an event, never for a time."""

import concurrent.futures
import contextlib
import hashlib
import threading
from typing import Iterator

import httpx
import pytest

from paretoserve.engine_process import free_port
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.client_limits import ClientLimiter
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.router import build_router
from tests.bench.fake_server import FakeServer
from tests.serve.helpers import get, post, running_app, sent_and_left
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

BODY = {"prompt": "hello there", "max_tokens": 3}
KEY_A, KEY_B = "key-of-client-a", "key-of-client-b"


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _label(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@contextlib.contextmanager
def limited_router(fake: FakeServer, keys: tuple[str, ...] = (), **limits) -> Iterator[tuple[str, ClientLimiter]]:
    """The router over `fake` with `limits`, in this process; yields its URL and its limiter."""
    port = free_port()
    app = build_router([StaticReplica(0, fake.url)], RouterConfig(port=port, api_keys=ApiKeys.of(keys), **limits))
    with running_app(app, port) as url:
        yield url, app.state.router.limiter


def _refused(url: str, client: str, limit: str) -> float:
    name = f'paretoserve_router_client_refused_total{{client="{client}",limit="{limit}"}}'
    line = next((ln for ln in get(url + "/metrics").text.splitlines() if ln.startswith(name)), None)
    return float(line.split()[-1]) if line else 0.0


def test_past_its_cap_a_key_gets_429_while_another_key_is_served():
    hold = threading.Event()
    with FakeServer(hold=hold) as fake, limited_router(fake, (KEY_A, KEY_B), max_concurrent_per_client=1) as \
            (url, limiter), concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, url + "/v1/completions", json=BODY, headers=_auth(KEY_A))
        wait_until(lambda: len(fake.state.bodies) == 1, "a's first request at the replica")
        again = post(url + "/v1/completions", json=BODY, headers=_auth(KEY_A))
        models = get(url + "/v1/models", headers=_auth(KEY_A))  # only generation requests count
        other = pool.submit(post, url + "/v1/chat/completions", headers=_auth(KEY_B),
                            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        wait_until(lambda: len(fake.state.bodies) == 2, "b's request at the replica")
        hold.set()
        answers = [first.result(), other.result()]
        wait_until(lambda: limiter.tracked() == 0, "every client's count back to zero")
        metrics = get(url + "/metrics").text
    assert again.status_code == 429 and again.headers["retry-after"] == "1"
    assert again.json()["error"]["type"] == "rate_limit_error"
    assert again.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert models.status_code == 200
    assert [a.status_code for a in answers] == [200, 200]
    assert f'client="{_label(KEY_A)}",limit="concurrency"}} 1.0' in metrics
    assert _label(KEY_B) not in metrics and KEY_A not in metrics


def test_a_cancelled_stream_gives_its_place_back():
    rest = threading.Event()  # the replica's stream never ends by itself: only the client leaving ends it
    with FakeServer(hold_rest=rest) as fake, limited_router(fake, (KEY_A,), max_concurrent_per_client=1) as \
            (url, limiter):
        with httpx.stream("POST", url + "/v1/completions", json={**BODY, "stream": True}, headers=_auth(KEY_A),
                          timeout=HANG_S) as response:
            chunks = response.iter_bytes()  # kept: a dropped iterator closes the connection at once
            next(chunks)
            assert limiter.in_flight(_label(KEY_A)) == 1
        wait_until(lambda: limiter.tracked() == 0, "the cancelled stream's count released")
        after = post(url + "/v1/completions", json={**BODY, "max_tokens": 1}, headers=_auth(KEY_A))
    assert after.status_code == 200


def test_a_client_that_leaves_a_plain_answer_gives_its_place_back():
    with FakeServer(hold=threading.Event()) as fake, limited_router(fake, max_concurrent_per_client=1) as \
            (url, limiter):
        with sent_and_left(url, "/v1/completions", BODY):
            wait_until(lambda: fake.state.running == 1, "the request at the replica")
        wait_until(lambda: limiter.tracked() == 0, "the count released once the client left")


def test_a_failed_or_malformed_request_gives_its_place_back():
    with FakeServer(fail_every=1, fail_status=500) as fake, \
            limited_router(fake, (KEY_A,), max_concurrent_per_client=1) as (url, limiter):
        failed = post(url + "/v1/completions", json=BODY, headers=_auth(KEY_A))
        wait_until(lambda: limiter.tracked() == 0, "the count released after the replica's 500")
        malformed = post(url + "/v1/completions", content=b"{not json", headers=_auth(KEY_A))
        wait_until(lambda: limiter.tracked() == 0, "the count released after the 400")
    assert failed.status_code == 500 and malformed.status_code == 400


def test_without_keys_the_cap_is_per_address():
    with FakeServer(hold=threading.Event()) as fake, limited_router(fake, max_concurrent_per_client=1) as \
            (url, limiter), sent_and_left(url, "/v1/completions", BODY):
        wait_until(lambda: fake.state.running == 1, "the first request at the replica")
        again = post(url + "/v1/completions", json=BODY)
        refused = _refused(url, "address", "concurrency")
    assert again.status_code == 429 and refused == 1.0


def test_past_its_rate_a_key_is_told_when_to_come_back():
    with FakeServer() as fake, limited_router(fake, (KEY_A, KEY_B), max_rate_per_client=0.001) as (url, limiter):
        first = post(url + "/v1/completions", json=BODY, headers=_auth(KEY_A))
        second = post(url + "/v1/completions", json=BODY, headers=_auth(KEY_A))
        other = post(url + "/v1/completions", json=BODY, headers=_auth(KEY_B))
        refused = _refused(url, _label(KEY_A), "rate")
    assert first.status_code == 200 and other.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
    assert 900 < int(second.headers["retry-after"]) <= 1000  # one request per 1,000 s, less the time gone by
    assert refused == 1.0
