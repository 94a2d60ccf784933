"""Bad input and overload against a real `paretoserve engine` process: OpenAI errors naming the field."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.openai_api.api_helpers import (
    CHAT,
    CTX_PER_SEQ,
    PROMPT,
    TIMEOUT,
    assert_openai_error,
    completion,
    finished,
    idle,
    post,
    scrape,
    wait_for,
)

pytestmark = pytest.mark.integration



LONG_TEXT = " ".join(["word"] * 400)  # ~400 tokens: more than CTX_PER_SEQ on its own
USER = [{"role": "user", "content": "Hi"}]

BAD_REQUESTS = [
    # (id, path, body (dict) or raw bytes, status, param)
    ("malformed-json", "/v1/completions", b'{"prompt": "hi",', 400, "body"),
    ("not-utf8", "/v1/completions", b'{"prompt": "\xc3\x28"}', 400, "body"),
    ("not-an-object", "/v1/completions", b'["hi"]', 400, "body"),
    ("missing-prompt", "/v1/completions", {"max_tokens": 4}, 400, "prompt"),
    ("prompt-wrong-type", "/v1/completions", {"prompt": 5}, 400, "prompt"),
    ("max-tokens-string", "/v1/completions", {"prompt": "hi", "max_tokens": "8"}, 400, "max_tokens"),
    ("temperature-string", "/v1/completions", {"prompt": "hi", "temperature": "hot"}, 400, "temperature"),
    ("stream-string", "/v1/completions", {"prompt": "hi", "stream": "yes"}, 400, "stream"),
    ("stop-wrong-type", "/v1/completions", {"prompt": "hi", "stop": [1]}, 400, "stop"),
    ("stream-options-nested", "/v1/completions",
     {"prompt": "hi", "stream": True, "stream_options": {"include_usage": 1}}, 400, "stream_options.include_usage"),
    ("n-2", "/v1/completions", {"prompt": "hi", "n": 2}, 400, "n"),
    ("max-tokens-0", "/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ("max-tokens-negative", "/v1/completions", {"prompt": "hi", "max_tokens": -5}, 400, "max_tokens"),
    ("empty-prompt", "/v1/completions", {"prompt": ""}, 400, "prompt"),
    ("empty-prompt-list", "/v1/completions", {"prompt": []}, 400, "prompt"),
    ("empty-prompt-in-list", "/v1/completions", {"prompt": [""]}, 400, "prompt"),
    ("two-prompts", "/v1/completions", {"prompt": ["a", "b"]}, 400, "prompt"),
    ("token-id-out-of-vocab", "/v1/completions", {"prompt": [10**9]}, 400, "prompt"),
    ("prompt-plus-max-tokens-beyond-ctx", "/v1/completions", {"prompt": "hi", "max_tokens": CTX_PER_SEQ}, 400,
     "max_tokens"),
    ("long-prompt-beyond-ctx", "/v1/completions", {"prompt": LONG_TEXT, "max_tokens": 4}, 400, "prompt"),
    ("long-prompt-no-max-tokens", "/v1/completions", {"prompt": LONG_TEXT, "max_tokens": None}, 400, "prompt"),
    ("unknown-model", "/v1/completions", {"prompt": "hi", "model": "gpt-4o"}, 404, "model"),
    ("chat-missing-messages", "/v1/chat/completions", {"max_tokens": 4}, 400, "messages"),
    ("chat-empty-messages", "/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("chat-bad-role", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 400,
     "messages.0.role"),
    ("chat-content-wrong-type", "/v1/chat/completions",
     {"messages": [*USER, {"role": "user", "content": 5}]}, 400, "messages.1.content"),
    ("chat-content-part-text-wrong-type", "/v1/chat/completions",
     {"messages": [*USER, {"role": "user", "content": [{"type": "text", "text": 5}]}]}, 400, "messages.1.content"),
    ("chat-max-tokens-0", "/v1/chat/completions", {"messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ("chat-max-completion-tokens-string", "/v1/chat/completions",
     {"messages": USER, "max_completion_tokens": "4"}, 400, "max_completion_tokens"),
    ("chat-beyond-ctx", "/v1/chat/completions", {"messages": USER, "max_tokens": 1000}, 400, "max_tokens"),
    ("chat-long-prompt-no-max-tokens", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": LONG_TEXT}]}, 400, "messages"),
    ("chat-unknown-model", "/v1/chat/completions", {"messages": USER, "model": "nope"}, 404, "model"),
    # the 500s of issue 11
    ("json-nested-30000-deep", "/v1/completions", b"[" * 30_000 + b"]" * 30_000, 400, "body"),  # in 64 KiB
    ("seed-beyond-int64", "/v1/completions", {"prompt": "hi", "seed": 1 << 64}, 400, "seed"),
    ("lone-surrogate-in-prompt", "/v1/completions", b'{"prompt": "a\\udc80b"}', 400, "prompt"),
    ("lone-surrogate-in-chat", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\udc80"}]}',
     400, "messages.0.content"),
    ("lone-surrogate-in-model", "/v1/completions", b'{"prompt": "hi", "model": "\\udc80"}', 404, "model"),
    ("min-tokens-over-max-tokens", "/v1/completions", {"prompt": "hi", "max_tokens": 2, "min_tokens": 3}, 400,
     "min_tokens"),
    ("logit-bias-outside-vocab", "/v1/completions", {"prompt": "hi", "logit_bias": {"999999999": 1}}, 400,
     "logit_bias"),
    ("best-of-2", "/v1/completions", {"prompt": "hi", "best_of": 2}, 400, "best_of"),
    ("suffix", "/v1/completions", {"prompt": "hi", "suffix": "end"}, 400, "suffix"),
    ("tools", "/v1/chat/completions", {"messages": USER, "tools": [{"type": "function"}]}, 400, "tools"),
    ("response-format-json", "/v1/chat/completions", {"messages": USER, "response_format": {"type": "json_object"}},
     400, "response_format"),
    ("top-logprobs", "/v1/chat/completions", {"messages": USER, "top_logprobs": 2}, 400, "top_logprobs"),
    ("presence-penalty-out-of-range", "/v1/completions", {"prompt": "hi", "presence_penalty": 3}, 400,
     "presence_penalty"),
]


@pytest.mark.parametrize("path, body, status, param", [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_gets_an_openai_error_naming_the_field(engine_url: str, path: str, body, status: int,
                                                         param: str) -> None:
    if isinstance(body, bytes):
        r = httpx.post(engine_url + path, content=body, headers={"content-type": "application/json"},
                       timeout=TIMEOUT)
    else:
        r = post(engine_url, path, body)
    error = assert_openai_error(r, status, param)
    if status == 404:
        assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"


def test_body_over_the_size_limit_is_413(engine_url: str) -> None:
    body = json.dumps({"prompt": "x" * 70_000, "max_tokens": 1}).encode()
    r = httpx.post(engine_url + "/v1/completions", content=body, headers={"content-type": "application/json"},
                   timeout=TIMEOUT)
    error = assert_openai_error(r, 413, "body")
    assert "65536" in error["message"]


def test_chunked_body_over_the_size_limit_is_413(engine_url: str) -> None:
    def chunks():  # no Content-Length: the server must count while reading
        yield b'{"prompt": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(engine_url + "/v1/completions", content=chunks(), headers={"content-type": "application/json"},
                   timeout=TIMEOUT)
    assert_openai_error(r, 413, "body")


def test_engine_still_serves_after_bad_input(engine_url: str) -> None:
    wait_for(engine_url, idle, "an idle engine")
    samples = scrape(engine_url)
    assert finished(samples, "error") == 0  # no bad input ever reached llama_decode
    out = completion(engine_url, max_tokens=8, temperature=0, ignore_eos=True)
    assert out["usage"]["completion_tokens"] == 8
    r = post(engine_url, "/v1/chat/completions", {"messages": CHAT, "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200
    assert r.json()["choices"][0]["finish_reason"] in ("length", "stop")


# -- a full queue ---------------------------------------------------------------------------


def test_full_queue_gets_429_with_retry_after(start_engine) -> None:
    url = start_engine("--max-batch", "1", "--max-queue", "1", "--ctx-per-seq", "2048", "--threads", "1",
                       "--max-step-tokens", "64")
    # far longer than the test: both requests end when their clients disconnect
    long_body = {"prompt": PROMPT, "max_tokens": 2000, "ignore_eos": True, "temperature": 0, "stream": True}
    with httpx.Client(timeout=TIMEOUT) as client:
        running = client.send(client.build_request("POST", url + "/v1/completions", json=long_body), stream=True)
        try:
            wait_for(url, lambda s: s[("paretoserve_requests_running",)] == 1, "the first request running")
            with httpx.Client(timeout=TIMEOUT) as client2:
                queued = client2.send(client2.build_request("POST", url + "/v1/completions", json=long_body),
                                      stream=True)
                try:
                    wait_for(url, lambda s: s[("paretoserve_requests_waiting",)] == 1, "one request queued")
                    for path, body in (("/v1/completions", {"prompt": "hi", "max_tokens": 2}),
                                       ("/v1/chat/completions", {"messages": USER, "max_tokens": 2})):
                        r = httpx.post(url + path, json=body, timeout=TIMEOUT)
                        error = assert_openai_error(r, 429, None)
                        assert error["type"] == "rate_limit_error"
                        assert int(r.headers["retry-after"]) >= 1
                    assert running.status_code == queued.status_code == 200
                finally:
                    queued.close()
        finally:
            running.close()
    wait_for(url, idle, "an idle engine once both clients left")
    r = httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2, "ignore_eos": True},
                   timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 2
