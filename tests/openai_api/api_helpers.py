"""Helpers for the HTTP tests against a real `paretoserve engine` process."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import HANG_S

MODEL_NAME = "gemma-3-270m-q4_k_m"
CTX_PER_SEQ = 256  # as started by the engine_url fixture
TIMEOUT = httpx.Timeout(HANG_S)  # one request: only a hang takes this long, however busy the machine
PROMPT = "The capital of France is"
CHAT = [{"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": "What is the capital of France?"}]


# -- helpers --------------------------------------------------------------------------------


def scrape(url: str) -> dict[tuple, float]:
    """/metrics as {(sample name, other labels...): value}, without the model_name label."""
    text = httpx.get(url + "/metrics", timeout=TIMEOUT).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert s.labels.get("model_name") == MODEL_NAME
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "model_name"))
            samples[(s.name, *labels)] = s.value
    return samples


def gauge(url: str, name: str) -> float:
    return scrape(url)[(f"paretoserve_{name}",)]


def wait_for(url: str, condition, what: str) -> None:
    """Poll /metrics until `condition(samples)` holds; after HANG_S, a hang: AssertionError with the metrics."""
    deadline = time.monotonic() + HANG_S
    while not condition(samples := scrape(url)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {HANG_S:g} s; metrics: "
                                 f"{ {k: v for k, v in samples.items() if 'requests' in k[0] or 'kv' in k[0]} }")
        time.sleep(0.1)


def idle(samples: dict) -> bool:
    return all(samples[(f"paretoserve_{name}",)] == 0
               for name in ("requests_running", "requests_waiting", "kv_tokens_used", "kv_tokens_reserved"))


def finished(samples: dict, reason: str) -> float:
    return samples.get(("paretoserve_requests_finished_total", ("finished_reason", reason)), 0.0)


def post(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=TIMEOUT)


def completion(url: str, **body) -> dict:
    r = post(url, "/v1/completions", {"prompt": PROMPT, **body})
    assert r.status_code == 200, r.text
    return r.json()


def sse_events(response: httpx.Response) -> list:
    """The `data:` payloads of an SSE response, JSON-decoded except the final "[DONE]"."""
    events = []
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        payload = line[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def assert_openai_error(r: httpx.Response, status: int, param: str | None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] == param, error
    return error


# -- plain endpoints ------------------------------------------------------------------------
