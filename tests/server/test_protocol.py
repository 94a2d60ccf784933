"""Request validation: every refusal is an OpenAI-shaped error whose `param` names the field."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from paretoserve.server.protocol import ApiError, ChatRequest, CompletionRequest, parse, read_json


def refusal(model, body) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(model, body)
    assert info.value.status == 400
    return info.value


# -- completions ----------------------------------------------------------------------------


def test_minimal_completion_gets_openai_defaults() -> None:
    req = parse(CompletionRequest, {"prompt": "hi"})
    assert (req.prompt, req.max_tokens, req.temperature, req.top_p, req.top_k) == ("hi", 16, 1.0, 1.0, 0)
    assert (req.stream, req.stream_options, req.seed, req.ignore_eos, req.min_tokens) == (False, None, None, False, 0)
    assert req.stop_strings() == ()


def test_prompt_may_be_token_ids_or_a_list_of_strings() -> None:
    assert parse(CompletionRequest, {"prompt": [1, 2, 3]}).prompt == [1, 2, 3]
    assert parse(CompletionRequest, {"prompt": ["a"]}).prompt == ["a"]


def test_unknown_fields_are_ignored() -> None:
    req = parse(CompletionRequest, {"prompt": "hi", "user": "me", "presence_penalty": 0.5})
    assert req.prompt == "hi"


def test_stop_strings_normalised() -> None:
    assert parse(CompletionRequest, {"prompt": "p", "stop": "\n"}).stop_strings() == ("\n",)
    assert parse(CompletionRequest, {"prompt": "p", "stop": ["a", "", "b"]}).stop_strings() == ("a", "b")
    assert parse(CompletionRequest, {"prompt": "p", "stop": None}).stop_strings() == ()


def test_integer_temperature_is_accepted() -> None:
    assert parse(CompletionRequest, {"prompt": "p", "temperature": 0}).temperature == 0


@pytest.mark.parametrize("body, param", [
    ({}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": [1, "a"]}, "prompt"),
    ({"prompt": [1.5]}, "prompt"),
    ({"prompt": "p", "max_tokens": "8"}, "max_tokens"),
    ({"prompt": "p", "max_tokens": 8.0}, "max_tokens"),
    ({"prompt": "p", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "p", "max_tokens": True}, "max_tokens"),
    ({"prompt": "p", "temperature": "hot"}, "temperature"),
    ({"prompt": "p", "temperature": -0.1}, "temperature"),
    ({"prompt": "p", "temperature": 2.5}, "temperature"),
    ({"prompt": "p", "top_p": 0}, "top_p"),
    ({"prompt": "p", "top_p": 1.5}, "top_p"),
    ({"prompt": "p", "top_k": -2}, "top_k"),
    ({"prompt": "p", "top_k": 1.0}, "top_k"),
    ({"prompt": "p", "seed": "1"}, "seed"),
    ({"prompt": "p", "stop": 5}, "stop"),
    ({"prompt": "p", "stop": ["a", 5]}, "stop"),
    ({"prompt": "p", "stream": "yes"}, "stream"),
    ({"prompt": "p", "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"prompt": "p", "stream_options": {"bogus": True}}, "stream_options.bogus"),
    ({"prompt": "p", "stream_options": "yes"}, "stream_options"),
    ({"prompt": "p", "n": 2}, "n"),
    ({"prompt": "p", "ignore_eos": 1}, "ignore_eos"),
    ({"prompt": "p", "min_tokens": -1}, "min_tokens"),
    ({"prompt": "p", "echo": True}, "echo"),
    ({"prompt": "p", "logprobs": 1}, "logprobs"),
    ({"prompt": "p", "model": 3}, "model"),
])
def test_completion_errors_name_the_field(body: dict, param: str) -> None:
    err = refusal(CompletionRequest, body)
    assert err.param == param
    assert err.message.startswith(f"{param}: ")
    assert err.type == "invalid_request_error"


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None])
def test_body_that_is_not_an_object(data: object) -> None:
    err = refusal(CompletionRequest, data)
    assert err.param == "body"


# -- chat -----------------------------------------------------------------------------------


def test_chat_defaults_and_text_of_content_parts() -> None:
    req = parse(ChatRequest, {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}},
                                     {"type": "text", "text": "b"}]},
    ]})
    assert req.max_tokens is None and req.max_completion_tokens is None
    assert [(m.role, m.text()) for m in req.messages] == [("system", "be brief"), ("user", "ab")]


@pytest.mark.parametrize("body, param", [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages.0"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]}, "messages.1.content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [5]}]}, "messages.1.content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": "3"}, "max_completion_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "0"}, "temperature"),
])
def test_chat_errors_name_the_nested_field(body: dict, param: str) -> None:
    err = refusal(ChatRequest, body)
    assert err.param == param
    assert err.message.startswith(f"{param}: ")


# -- the error shape ------------------------------------------------------------------------


def test_api_error_body_and_response() -> None:
    err = ApiError(429, "the queue is full", type_="rate_limit_error", headers={"Retry-After": "1"})
    assert err.body() == {"error": {"message": "the queue is full", "type": "rate_limit_error", "param": None,
                                    "code": None}}
    response = err.response()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert json.loads(response.body) == err.body()


# -- reading bodies -------------------------------------------------------------------------


def make_request(chunks: list[bytes], content_length: int | None) -> Request:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}, receive)


def read(chunks: list[bytes], content_length: int | None, limit: int) -> object:
    return asyncio.run(read_json(make_request(chunks, content_length), limit))


def test_read_json_in_chunks() -> None:
    assert read([b'{"prompt": ', b'"hi"}'], None, 100) == {"prompt": "hi"}


def test_read_json_refuses_a_declared_size_over_the_limit() -> None:
    with pytest.raises(ApiError) as info:
        read([b"{}"], 101, 100)
    assert (info.value.status, info.value.param) == (413, "body")
    assert "100" in info.value.message


def test_read_json_refuses_a_streamed_body_over_the_limit() -> None:
    with pytest.raises(ApiError) as info:
        read([b"x" * 60, b"x" * 60], None, 100)
    assert (info.value.status, info.value.param) == (413, "body")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"a": 1'])
def test_read_json_refuses_malformed_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        read([raw], len(raw), 100)
    assert (info.value.status, info.value.param) == (400, "body")
    assert info.value.message.startswith("request body is not valid JSON")
