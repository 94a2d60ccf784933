"""Request validation: every refusal is an OpenAI-shaped error whose `param` names the field."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from paretoserve.openai_api.protocol import ApiError, ChatRequest, CompletionRequest, parse, parse_json, read_json


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
    req = parse(CompletionRequest, {"prompt": "hi", "user": "me", "metadata": {"a": 1}})
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


# -- null means absent ------------------------------------------------------------------------

NULLABLE = ["model", "temperature", "top_p", "top_k", "seed", "stop", "stream", "stream_options", "n", "echo",
            "logprobs", "max_tokens", "ignore_eos", "min_tokens", "presence_penalty", "frequency_penalty",
            "logit_bias", "best_of", "suffix", "user"]


@pytest.mark.parametrize("name", NULLABLE)
def test_null_is_the_same_as_absent_in_completions(name: str) -> None:
    assert parse(CompletionRequest, {"prompt": "p", name: None}) == parse(CompletionRequest, {"prompt": "p"})


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "temperature", "n", "stream", "logprobs",
                                  "top_logprobs", "tools", "response_format", "seed"])
def test_null_is_the_same_as_absent_in_chat(name: str) -> None:
    messages = [{"role": "user", "content": "x", "name": None}]
    assert parse(ChatRequest, {"messages": messages, name: None}) == parse(ChatRequest, {"messages": messages})


def test_null_max_tokens_is_the_default_16_not_the_whole_context() -> None:
    assert parse(CompletionRequest, {"prompt": "p", "max_tokens": None}).max_tokens == 16
    assert parse(ChatRequest, {"messages": [{"role": "user", "content": "x"}], "max_tokens": None}).max_tokens is None


def test_null_inside_stream_options_and_content_parts() -> None:
    req = parse(CompletionRequest, {"prompt": "p", "stream_options": {"include_usage": None}})
    assert req.stream_options.include_usage is False
    chat = parse(ChatRequest, {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]})
    assert chat.messages[0].text() == ""


@pytest.mark.parametrize("body, param", [
    ({"prompt": None}, "prompt"),
    ({"prompt": "p", "messages": None, "max_tokens": 0}, "max_tokens"),
])
def test_null_for_a_required_field_is_missing(body: dict, param: str) -> None:
    assert refusal(CompletionRequest, body).param == param
    assert refusal(ChatRequest, {"messages": None}).param == "messages"


# -- seeds, penalties, logit_bias, stream options ------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 0, -(1 << 63), (1 << 63) - 1])
def test_int64_seeds_are_accepted(seed: int) -> None:
    assert parse(CompletionRequest, {"prompt": "p", "seed": seed}).seed == seed


def test_penalties_logit_bias_and_continuous_usage_are_accepted() -> None:
    req = parse(CompletionRequest, {"prompt": "p", "presence_penalty": -2, "frequency_penalty": 1.5,
                                    "logit_bias": {"5": 100, "17": -3.5},
                                    "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    assert (req.presence_penalty, req.frequency_penalty, req.logit_bias) == (-2, 1.5, {"5": 100, "17": -3.5})
    assert req.stream_options.continuous_usage_stats is True


@pytest.mark.parametrize("model, body", [(CompletionRequest, {"prompt": "p"}),
                                         (ChatRequest, {"messages": [{"role": "user", "content": "p"}]})])
@pytest.mark.parametrize("obfuscation", [True, False])
def test_openai_include_obfuscation_is_accepted(model, body: dict, obfuscation: bool) -> None:
    # the openai SDK's stream options type has it; forbidding it made every such request a 400
    options = {"include_usage": True, "include_obfuscation": obfuscation}
    req = parse(model, {**body, "stream": True, "stream_options": options})
    assert req.stream_options.include_usage is True


@pytest.mark.parametrize("body, param", [
    ({"seed": 1 << 63}, "seed"),
    ({"seed": -(1 << 63) - 1}, "seed"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -2.01}, "frequency_penalty"),
    ({"frequency_penalty": "1"}, "frequency_penalty"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"-1": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"logit_bias": {"5": "1"}}, "logit_bias"),
    ({"logit_bias": [5]}, "logit_bias"),
    ({"stream_options": {"continuous_usage_stats": 1}}, "stream_options.continuous_usage_stats"),
])
def test_out_of_range_values_name_the_field(body: dict, param: str) -> None:
    assert refusal(CompletionRequest, {"prompt": "p", **body}).param == param


# -- parameters this engine cannot honour are refused, not ignored ------------------------------


@pytest.mark.parametrize("name, value", [("best_of", 2), ("suffix", " and so on"), ("top_logprobs", 3),
                                         ("tools", [{"type": "function", "function": {"name": "f"}}]),
                                         ("response_format", {"type": "json_object"}), ("best_of", True),
                                         ("response_format", "text")])
def test_unsupported_parameters_are_refused_by_name(name: str, value) -> None:
    for model, base in ((CompletionRequest, {"prompt": "p"}), (ChatRequest, {"messages": [{"role": "user",
                                                                                           "content": "x"}]})):
        err = refusal(model, {**base, name: value})
        assert err.param == name
        assert "not supported" in err.message


@pytest.mark.parametrize("name, value", [("best_of", 1), ("suffix", ""), ("top_logprobs", 0), ("tools", []),
                                         ("response_format", {"type": "text"})])
def test_unsupported_parameters_at_their_unused_value_are_fine(name: str, value) -> None:
    parse(CompletionRequest, {"prompt": "p", name: value})
    parse(ChatRequest, {"messages": [{"role": "user", "content": "x"}], name: value})


# -- text that is not valid Unicode ---------------------------------------------------------------


@pytest.mark.parametrize("model, body, param", [
    (CompletionRequest, {"prompt": "a\udc80b"}, "prompt"),
    (CompletionRequest, {"prompt": ["a\ud800"]}, "prompt.0"),
    (CompletionRequest, {"prompt": "p", "stop": "\udfff"}, "stop"),
    (CompletionRequest, {"prompt": "p", "stop": ["a", "\udfff"]}, "stop.1"),
    (ChatRequest, {"messages": [{"role": "user", "content": "a\udc80b"}]}, "messages.0.content"),
    (ChatRequest, {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udc80"}]}]},
     "messages.0.content.0.text"),
])
def test_a_lone_surrogate_is_refused_naming_the_field(model, body: dict, param: str) -> None:
    err = refusal(model, body)
    assert err.param == param and "lone surrogate" in err.message


def test_a_surrogate_pair_is_ordinary_text() -> None:
    assert parse_json('{"prompt": "\\ud83d\\ude00"}'.encode())["prompt"] == "\U0001f600"
    assert parse(CompletionRequest, {"prompt": "\U0001f600"}).prompt == "\U0001f600"


def test_an_error_echoing_a_surrogate_still_renders() -> None:
    err = ApiError(404, "model '\udc80' is not served here", param="model")
    assert json.loads(err.response().body) == err.body()


# -- JSON that json.loads cannot take -------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"[" * 50_000 + b"]" * 50_000, b'{"prompt": ' + b"[" * 100_000])
def test_deeply_nested_json_is_a_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert (info.value.status, info.value.param) == (400, "body")


@pytest.mark.parametrize("raw", [b'{"temperature": NaN}', b'{"temperature": Infinity}', b'{"t": -Infinity}'])
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert (info.value.status, info.value.param) == (400, "body")
