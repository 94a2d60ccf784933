"""The OpenAI-compatible API of a real `paretoserve engine` process on the bundled model."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

MODEL_NAME = "gemma-3-270m-q4_k_m"
CTX_PER_SEQ = 256  # as started by the engine_url fixture
TIMEOUT = httpx.Timeout(120.0)  # generous: other engines may share these cores
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


def wait_for(url: str, condition, timeout_s: float, what: str) -> float:
    """Poll /metrics until `condition(samples)` holds; returns the seconds it took."""
    start = time.monotonic()
    while True:
        samples = scrape(url)
        if condition(samples):
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what} not reached within {timeout_s} s; metrics: "
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


def test_health(engine_url: str) -> None:
    r = httpx.get(engine_url + "/health", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_models_lists_the_served_model(engine_url: str) -> None:
    body = httpx.get(engine_url + "/v1/models", timeout=TIMEOUT).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL_NAME]
    assert body["data"][0]["max_model_len"] == CTX_PER_SEQ


def test_metrics_report_the_engine_knobs(engine_url: str) -> None:
    samples = scrape(engine_url)
    assert samples[("paretoserve_max_batch",)] == 16
    assert samples[("paretoserve_kv_tokens_budget",)] >= 16 * CTX_PER_SEQ
    assert samples[("paretoserve_preemptions_total",)] == 0


@pytest.mark.parametrize("model", ["default", MODEL_NAME, None])
def test_model_default_and_served_name_are_accepted(engine_url: str, model: str | None) -> None:
    body = {"max_tokens": 3, "temperature": 0}
    if model is not None:
        body["model"] = model
    out = completion(engine_url, **body)
    assert out["model"] == MODEL_NAME
    assert out["object"] == "text_completion"
    assert out["usage"]["completion_tokens"] <= 3
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]


# -- batching -------------------------------------------------------------------------------


def test_concurrent_requests_are_batched_and_get_exactly_max_tokens(engine_url: str) -> None:
    n, max_tokens = 16, 16
    before = scrape(engine_url)
    running_seen: list[float] = []
    done = threading.Event()

    def sample_running() -> None:
        while True:  # gently: a busy client would slow the engine down on a small machine
            running_seen.append(gauge(engine_url, "requests_running"))
            if done.wait(0.1):
                return

    sampler = threading.Thread(target=sample_running)
    sampler.start()
    try:
        with ThreadPoolExecutor(n) as pool:
            bodies = [{"prompt": f"Story number {i}: once upon a time", "max_tokens": max_tokens,
                       "ignore_eos": True, "temperature": 0.8, "seed": i} for i in range(n)]
            responses = list(pool.map(lambda b: post(engine_url, "/v1/completions", b), bodies))
    finally:
        done.set()
        sampler.join()
    after = scrape(engine_url)

    for r in responses:
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["usage"]["completion_tokens"] == max_tokens
        assert out["choices"][0]["finish_reason"] == "length"
    assert max(running_seen) > 1

    def steps(samples: dict, le: str | None = None) -> float:
        key = ("paretoserve_step_batch_size_count",) if le is None else \
            ("paretoserve_step_batch_size_bucket", ("le", le))
        return samples[key]

    total_steps = steps(after) - steps(before)
    single_steps = steps(after, "1.0") - steps(before, "1.0")
    assert total_steps > single_steps, "no step decoded more than one sequence"
    # batching shares steps: far fewer steps than 16 requests x (1 prefill + 15 decodes) one by one
    assert total_steps < n * max_tokens / 2
    generated = after[("paretoserve_generation_tokens_total",)] - before[("paretoserve_generation_tokens_total",)]
    assert generated == n * max_tokens


# -- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_streaming_and_non_streaming_agree_on_greedy_output(engine_url: str, path: str) -> None:
    chat = "chat" in path
    body = {"max_tokens": 24, "temperature": 0, **({"messages": CHAT} if chat else {"prompt": PROMPT})}
    whole = post(engine_url, path, body)
    assert whole.status_code == 200, whole.text
    whole = whole.json()
    (choice,) = whole["choices"]
    text = choice["message"]["content"] if chat else choice["text"]
    if chat:
        assert whole["object"] == "chat.completion" and choice["message"]["role"] == "assistant"

    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", engine_url + path, json=stream_body, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)

    assert events[-1] == "[DONE]"
    usage_chunk, chunks = events[-2], events[:-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == whole["usage"]
    assert chunks and all(c["usage"] is None for c in chunks)
    assert len({c["id"] for c in events[:-1]}) == 1
    if chat:
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        streamed = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    else:
        streamed = "".join(c["choices"][0]["text"] for c in chunks)
    assert streamed == text
    assert len(text) > 0
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + \
        [choice["finish_reason"]]


def test_streaming_without_include_usage_has_no_usage_chunk(engine_url: str) -> None:
    body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", engine_url + "/v1/completions", json=body, timeout=TIMEOUT) as r:
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e and len(e["choices"]) == 1 for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"


# -- disconnects ----------------------------------------------------------------------------


def test_client_disconnecting_mid_stream_frees_its_slot(engine_url: str) -> None:
    wait_for(engine_url, idle, 30, "an idle engine")
    aborted_before = finished(scrape(engine_url), "abort")
    body = {"prompt": PROMPT, "max_tokens": 200, "ignore_eos": True, "temperature": 0, "stream": True}
    with httpx.Client(timeout=TIMEOUT) as client:
        with client.stream("POST", engine_url + "/v1/completions", json=body) as r:
            lines = r.iter_lines()
            received = 0
            while received < 3:
                if next(lines).startswith("data: "):
                    received += 1
            samples = scrape(engine_url)  # still connected: the request holds its slot
            assert samples[("paretoserve_requests_running",)] == 1
            assert samples[("paretoserve_kv_tokens_used",)] > 0
            assert samples[("paretoserve_kv_tokens_reserved",)] > 200  # prompt + max_tokens
        # leaving both blocks closes the connection mid-stream
    wait_for(engine_url, idle, 5, "slot freed after the client left")
    assert finished(scrape(engine_url), "abort") == aborted_before + 1
    out = completion(engine_url, max_tokens=4, temperature=0, ignore_eos=True)
    assert out["usage"]["completion_tokens"] == 4


def test_client_timing_out_on_a_non_streaming_request_frees_its_slot(engine_url: str) -> None:
    wait_for(engine_url, idle, 30, "an idle engine")
    aborted_before = finished(scrape(engine_url), "abort")
    body = {"prompt": PROMPT, "max_tokens": 200, "ignore_eos": True, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(engine_url + "/v1/completions", json=body, timeout=httpx.Timeout(60.0, read=0.5))
    wait_for(engine_url, idle, 5, "slot freed after the client left")
    assert finished(scrape(engine_url), "abort") == aborted_before + 1


# -- sampling through the API ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_stop_string_ends_generation_and_is_not_returned(engine_url: str, stream: bool) -> None:
    reference = completion(engine_url, max_tokens=24, temperature=0)["choices"][0]["text"]
    assert len(reference) > 20, reference
    middle = len(reference) // 2
    stop = reference[middle:middle + 4]  # most likely spans a token boundary
    expected = reference[:reference.index(stop)]

    body = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0, "stop": [stop, "never appears: §§§"]}
    if stream:
        with httpx.stream("POST", engine_url + "/v1/completions", json={**body, "stream": True},
                          timeout=TIMEOUT) as r:
            events = sse_events(r)
        text = "".join(e["choices"][0]["text"] for e in events[:-1])
        finish_reason = events[-2]["choices"][0]["finish_reason"]
    else:
        out = completion(engine_url, **body)
        text, finish_reason = out["choices"][0]["text"], out["choices"][0]["finish_reason"]
        assert out["usage"]["completion_tokens"] < 24
    assert finish_reason == "stop"
    assert stop not in text
    assert text == expected


def test_chat_stop_string(engine_url: str) -> None:
    body = {"messages": CHAT, "max_tokens": 32, "temperature": 0, "ignore_eos": True}
    reference = post(engine_url, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"]
    assert "\n" in reference.strip(), reference  # the bundled base model goes on to invent the next turn

    r = post(engine_url, "/v1/chat/completions", {**body, "stop": "\n"})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == reference[:reference.index("\n")]


def test_seed_makes_sampling_reproducible(engine_url: str) -> None:
    def sample(seed: int) -> str:
        out = completion(engine_url, max_tokens=16, temperature=1.0, seed=seed, ignore_eos=True)
        return out["choices"][0]["text"]

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))


@pytest.fixture(scope="module")
def tokenize():
    """The bundled model's tokenizer, loaded in this process the way the engine loads it."""
    from paretoserve.engine.config import EngineConfig
    from paretoserve.engine.llama_runner import LlamaRunner
    from paretoserve.model import resolve_model

    spec = resolve_model("default")
    runner = LlamaRunner(EngineConfig(model_path=spec.path, model_name=spec.name, max_batch=1, ctx_per_seq=16,
                                      threads=1, max_step_tokens=16))
    yield runner.tokenize
    runner.close()


def test_token_id_prompt_matches_text_prompt(engine_url: str, tokenize) -> None:
    ids = tokenize(PROMPT)
    text_out = completion(engine_url, max_tokens=8, temperature=0)
    ids_out = post(engine_url, "/v1/completions", {"prompt": ids, "max_tokens": 8, "temperature": 0})
    assert ids_out.status_code == 200, ids_out.text
    ids_out = ids_out.json()
    assert ids_out["usage"]["prompt_tokens"] == text_out["usage"]["prompt_tokens"] == len(ids)
    assert ids_out["choices"][0]["text"] == text_out["choices"][0]["text"]


def test_list_of_one_string_is_the_same_prompt(engine_url: str) -> None:
    plain = completion(engine_url, max_tokens=6, temperature=0)
    listed = post(engine_url, "/v1/completions", {"prompt": [PROMPT], "max_tokens": 6, "temperature": 0}).json()
    assert listed["choices"][0]["text"] == plain["choices"][0]["text"]
    assert listed["usage"] == plain["usage"]


# -- bad input ------------------------------------------------------------------------------

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
    wait_for(engine_url, idle, 30, "an idle engine")
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
            wait_for(url, lambda s: s[("paretoserve_requests_running",)] == 1, 60, "the first request running")
            with httpx.Client(timeout=TIMEOUT) as client2:
                queued = client2.send(client2.build_request("POST", url + "/v1/completions", json=long_body),
                                      stream=True)
                try:
                    wait_for(url, lambda s: s[("paretoserve_requests_waiting",)] == 1, 30, "one request queued")
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
    wait_for(url, idle, 30, "an idle engine once both clients left")
    r = httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2, "ignore_eos": True},
                   timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 2
