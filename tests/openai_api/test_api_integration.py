"""The OpenAI-compatible API of a real `paretoserve engine` process: generation, streaming, metrics."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.openai_api.api_helpers import (
    CHAT,
    CTX_PER_SEQ,
    MODEL_NAME,
    PROMPT,
    TIMEOUT,
    completion,
    finished,
    gauge,
    idle,
    post,
    scrape,
    sse_events,
    wait_for,
)
from tests.serve.helpers import sent_and_left

pytestmark = pytest.mark.integration


def test_health(engine_url: str) -> None:
    r = httpx.get(engine_url + "/health", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_models_lists_the_served_model(engine_url: str) -> None:
    body = httpx.get(engine_url + "/v1/models", timeout=TIMEOUT).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL_NAME]
    assert body["data"][0]["max_model_len"] == CTX_PER_SEQ


@pytest.mark.parametrize("model_id", [MODEL_NAME, "default"])
def test_models_retrieve(engine_url: str, model_id: str) -> None:
    r = httpx.get(engine_url + f"/v1/models/{model_id}", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["id"] == MODEL_NAME


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
    wait_for(engine_url, idle, "an idle engine")
    aborted_before = finished(scrape(engine_url), "abort")
    body = {"prompt": PROMPT, "max_tokens": 200, "ignore_eos": True, "temperature": 0, "stream": True}
    with httpx.Client(timeout=TIMEOUT) as client, \
            client.stream("POST", engine_url + "/v1/completions", json=body) as r:
        lines = r.iter_lines()
        received = 0
        while received < 3:
            if next(lines).startswith("data: "):
                received += 1
        samples = scrape(engine_url)  # still connected: the request holds its slot
        assert samples[("paretoserve_requests_running",)] == 1
        assert samples[("paretoserve_kv_tokens_used",)] > 0
        assert samples[("paretoserve_kv_tokens_reserved",)] > 200  # prompt + max_tokens
    # leaving the block closes the stream and the client: the connection ends mid-stream
    wait_for(engine_url, idle, "slot freed after the client left")
    assert finished(scrape(engine_url), "abort") == aborted_before + 1
    out = completion(engine_url, max_tokens=4, temperature=0, ignore_eos=True)
    assert out["usage"]["completion_tokens"] == 4


def test_client_leaving_a_non_streaming_request_frees_its_slot(engine_url: str) -> None:
    wait_for(engine_url, idle, "an idle engine")
    aborted_before = finished(scrape(engine_url), "abort")
    body = {"prompt": PROMPT, "max_tokens": 200, "ignore_eos": True, "temperature": 0}
    with sent_and_left(engine_url, "/v1/completions", body):  # as a client whose read timeout expired
        wait_for(engine_url, lambda s: s[("paretoserve_requests_running",)] == 1, "the request running")
    wait_for(engine_url, idle, "slot freed after the client left")
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


def test_seed_minus_one_samples_at_random(engine_url: str) -> None:
    texts = {completion(engine_url, max_tokens=8, temperature=1.0, seed=-1, ignore_eos=True)["choices"][0]["text"]
             for _ in range(3)}
    assert len(texts) > 1


def test_a_tiny_temperature_is_greedy(engine_url: str) -> None:
    greedy = completion(engine_url, max_tokens=8, temperature=0, ignore_eos=True)["choices"][0]["text"]
    tiny = completion(engine_url, max_tokens=8, temperature=1e-308, ignore_eos=True)["choices"][0]["text"]
    assert tiny == greedy and tiny


def test_null_max_tokens_is_16_on_completions(engine_url: str) -> None:
    out = completion(engine_url, max_tokens=None, temperature=None, top_p=None, n=None, stream=None, echo=None,
                     ignore_eos=True)
    assert out["usage"]["completion_tokens"] == 16


def test_logit_bias_forces_a_token(engine_url: str, tokenize) -> None:
    token = tokenize(" banana", add_special=False)[0]
    one = completion(engine_url, max_tokens=1, temperature=0, logit_bias={str(token): 100})["choices"][0]["text"]
    four = completion(engine_url, max_tokens=4, temperature=0, logit_bias={str(token): 100})["choices"][0]["text"]
    assert one == " banana" and four == one * 4


def test_penalties_stop_a_nudged_repeat(engine_url: str, tokenize) -> None:
    # +10 makes " banana" win once the context is "the capital of the" and then again and again
    # (measured: " the capital of the banana banana banana banana"); the penalties end that.
    token = tokenize(" banana", add_special=False)[0]
    body = {"max_tokens": 8, "temperature": 0, "ignore_eos": True, "logit_bias": {str(token): 10}}
    plain = completion(engine_url, **body)["choices"][0]["text"]
    penalised = completion(engine_url, **body, frequency_penalty=2.0, presence_penalty=2.0)["choices"][0]["text"]
    assert plain.count("banana") >= 2 and penalised.count("banana") < plain.count("banana")


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
