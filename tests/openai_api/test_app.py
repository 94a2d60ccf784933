"""The engine's HTTP API over a stub engine: every answer, even to a bug, is OpenAI-shaped JSON."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.requests import Request

from paretoserve.openai_api.app import _until_disconnect
from tests.openai_api.stub_engine import N_VOCAB, StubEngine, StubRunner, stub_client

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def client():
    with stub_client() as pair:
        yield pair


def raw(client, path: str, content: bytes):
    return client.post(path, content=content, headers={"content-type": "application/json"})


def error_of(response, status: int, param: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    return error


# -- the 500s of issue 11, each reproduced ------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_json_nested_50000_deep_is_a_400(client, path: str) -> None:
    error = error_of(raw(client[0], path, b"[" * 50_000 + b"]" * 50_000), 400, "body")
    assert "nested too deeply" in error["message"]


def test_seed_minus_one_means_random(client) -> None:
    c, engine = client
    for _ in range(2):
        assert c.post("/v1/completions", json={"prompt": "hi", "seed": -1, "max_tokens": 2}).status_code == 200
    assert c.post("/v1/completions", json={"prompt": "hi", "seed": 1 << 64}).json()["error"]["param"] == "seed"


@pytest.mark.parametrize("path, body, param", [
    ("/v1/completions", b'{"prompt": "a\\udc80b"}', "prompt"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "a\\udc80b"}]}', "messages.0.content"),
])
def test_a_lone_surrogate_in_the_text_is_a_400(client, path: str, body: bytes, param: str) -> None:
    error_of(raw(client[0], path, body), 400, param)


def test_a_surrogate_in_model_gets_a_404_that_renders(client) -> None:
    error = error_of(raw(client[0], "/v1/completions", b'{"prompt": "hi", "model": "x\\udc80"}'), 404, "model")
    assert error["code"] == "model_not_found" and "\udc80" in error["message"]


def test_a_client_leaving_a_plain_request_gets_no_invalid_state_error() -> None:
    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def work():
        await asyncio.Event().wait()  # never done: only the disconnect ends the request

    async def main():
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
        return await _until_disconnect(request, work())

    assert asyncio.run(main()).status_code == 499


def test_an_unexpected_error_is_a_json_500_with_a_request_id_logged_once(caplog, monkeypatch) -> None:
    server_log = logging.getLogger("uvicorn.error")  # does not propagate to the root logger caplog watches
    monkeypatch.setattr(server_log, "handlers", [*server_log.handlers, caplog.handler])
    with stub_client(StubEngine(runner=StubRunner(fail_with=RuntimeError("a bug")))) as (client, _), \
            caplog.at_level(logging.ERROR):
        response = client.post("/v1/completions", json={"prompt": "hi"})
    error = error_of(response, 500, None)
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"] and error["type"] == "server_error"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and request_id in logged[0].getMessage() and "a bug" in logged[0].exc_text


# -- null, ranges and parameters -----------------------------------------------------------------


def test_null_max_tokens_is_the_default_16(client) -> None:
    c, engine = client
    out = c.post("/v1/completions", json={"prompt": "hi", "max_tokens": None, "temperature": None, "n": None,
                                          "stream": None, "echo": None, "top_p": None}).json()
    assert out["usage"]["completion_tokens"] == 16
    assert engine.requests[-1].max_tokens == 16 and engine.requests[-1].temperature == 1.0


def test_null_max_tokens_in_chat_fills_the_context_as_absent_does(client) -> None:
    c, engine = client
    absent = c.post("/v1/chat/completions", json=CHAT).json()["usage"]
    null = c.post("/v1/chat/completions", json={**CHAT, "max_tokens": None}).json()["usage"]
    assert absent == null and absent["prompt_tokens"] + absent["completion_tokens"] == engine.ctx_per_seq


@pytest.mark.parametrize("path, body", [("/v1/completions", {"prompt": "hi", "max_tokens": 4, "min_tokens": 5}),
                                        ("/v1/chat/completions", {**CHAT, "min_tokens": 1000})])
def test_min_tokens_above_max_tokens_is_a_400(client, path: str, body: dict) -> None:
    error = error_of(client[0].post(path, json=body), 400, "min_tokens")
    assert "max_tokens" in error["message"]


def test_penalties_and_logit_bias_reach_the_sampler(client) -> None:
    c, engine = client
    r = c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1, "presence_penalty": 0.5,
                                        "frequency_penalty": -1, "logit_bias": {"7": 10, "200": -100}})
    assert r.status_code == 200
    params = engine.requests[-1]
    assert (params.presence_penalty, params.frequency_penalty, params.logit_bias) == (0.5, -1, {7: 10, 200: -100})


def test_logit_bias_outside_the_vocabulary_is_a_400(client) -> None:
    error = error_of(client[0].post("/v1/completions", json={"prompt": "hi", "logit_bias": {str(N_VOCAB): 1}}),
                     400, "logit_bias")
    assert str(N_VOCAB) in error["message"]


@pytest.mark.parametrize("name, value", [("best_of", 3), ("suffix", "!"), ("tools", [{"type": "function"}]),
                                         ("response_format", {"type": "json_schema"}), ("top_logprobs", 2)])
def test_unsupported_parameters_are_a_400_naming_them(client, name: str, value) -> None:
    error = error_of(client[0].post("/v1/chat/completions", json={**CHAT, name: value}), 400, name)
    assert "not supported" in error["message"]


def test_continuous_usage_stats_puts_a_running_usage_on_every_chunk(client) -> None:
    body = {"prompt": "hi", "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    text = client[0].post("/v1/completions", json=body).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert [e["usage"]["completion_tokens"] for e in events] == [1, 2, 3, 3]
    assert events[-1]["choices"] == []


# -- routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["stub-model", "default"])
def test_models_retrieve(client, model_id: str) -> None:
    r = client[0].get(f"/v1/models/{model_id}")
    assert r.status_code == 200 and r.json()["id"] == "stub-model" and r.json()["object"] == "model"


@pytest.mark.parametrize("model_id", ["gpt-4o", "org/some-model", "%ED%B2%80"])
def test_models_retrieve_of_another_model_is_an_openai_404(client, model_id: str) -> None:
    assert error_of(client[0].get(f"/v1/models/{model_id}"), 404, "model")["code"] == "model_not_found"


def test_unknown_routes_and_methods_are_openai_errors(client) -> None:
    assert error_of(client[0].get("/v1/embeddings"), 404, None)["code"] == "not_found"
    r = client[0].get("/v1/completions")
    assert error_of(r, 405, None)["code"] == "method_not_allowed" and "POST" in r.headers["allow"]


def test_openapi_document_lists_every_route(client) -> None:
    doc = client[0].get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/{model_id}",
                                 "/health", "/metrics", "/openapi.json"}
    completion = doc["components"]["schemas"]["CompletionRequest"]
    assert completion["required"] == ["prompt"]
    assert {"type": "null"} in completion["properties"]["max_tokens"]["anyOf"]
    assert completion["properties"]["logit_bias"]["anyOf"][0]["additionalProperties"] is False


def test_a_resumed_request_hands_its_tokens_to_the_penalties(client) -> None:
    c, engine = client
    body = {"prompt": "hi", "max_tokens": 5, "frequency_penalty": 1.0, "paretoserve_resume": {"tokens": [7, 8]}}
    assert c.post("/v1/completions", json=body).json()["usage"]["completion_tokens"] == 5
    assert engine.requests[-1].generated == (7, 8) and engine.requests[-1].max_tokens == 3
