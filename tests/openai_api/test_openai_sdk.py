"""The official `openai` SDK against the engine and through the router in front of it: completions and chat,
streamed or not, stop, seed, models, usage in a stream, and errors as the SDK's own exceptions."""

from __future__ import annotations

from typing import Callable, Iterator

import httpx
import openai
import pytest

from paretoserve.serve.backends import StaticReplica
from tests.bench.fake_server import FakeServer
from tests.openai_api.api_helpers import CHAT, MODEL_NAME, PROMPT
from tests.serve.helpers import running_router
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

MAX_TOKENS = 6
GREEDY = {"model": "default", "max_tokens": MAX_TOKENS, "temperature": 0, "extra_body": {"ignore_eos": True}}


def sdk_client(url: str) -> openai.OpenAI:
    """A client of the server at `url`; no retries, so every error shows at once."""
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=HANG_S)


@pytest.fixture(scope="module")
def router_url(engine_url: str) -> Iterator[str]:
    """The router in this process over one replica: the shared engine."""
    with running_router([StaticReplica(0, engine_url)]) as url:
        yield url


@pytest.fixture(params=["engine", "router"])
def client(request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    """A client of the engine itself, or of the router in front of it."""
    with sdk_client(request.getfixturevalue(f"{request.param}_url")) as client:
        yield client


def create(client: openai.OpenAI, chat: bool, **kwargs):
    """A greedy completion or chat completion (`kwargs` override GREEDY)."""
    if chat:
        return client.chat.completions.create(**{**GREEDY, "messages": CHAT, **kwargs})
    return client.completions.create(**{**GREEDY, "prompt": PROMPT, **kwargs})


def text_of(choice, chat: bool) -> str:
    """A choice's text: of a whole answer or, streamed, of one chunk."""
    if chat:
        return choice.message.content if hasattr(choice, "message") else choice.delta.content or ""
    return choice.text


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL_NAME]
    assert client.models.retrieve(MODEL_NAME).id == client.models.retrieve("default").id == MODEL_NAME
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found" and "no-such-model" in info.value.message


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_a_stream_with_usage_matches_the_whole_answer(client: openai.OpenAI, chat: bool) -> None:
    whole = create(client, chat)
    (choice,) = whole.choices
    assert whole.model == MODEL_NAME and whole.object == ("chat.completion" if chat else "text_completion")
    assert choice.finish_reason == "length" and text_of(choice, chat)
    assert whole.usage.completion_tokens == MAX_TOKENS
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + MAX_TOKENS

    *chunks, last = create(client, chat, stream=True, stream_options={"include_usage": True})
    assert last.choices == [] and last.usage == whole.usage
    assert chunks and all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert len({c.id for c in chunks + [last]}) == 1
    assert "".join(text_of(c.choices[0], chat) for c in chunks) == text_of(choice, chat)
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    if chat:
        assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].object == "chat.completion.chunk"


def test_stream_options_include_obfuscation_is_accepted(client: openai.OpenAI) -> None:
    # in the SDK's stream options type; it was a 400 (extra field), though it changes nothing in the text
    options = {"include_usage": True, "include_obfuscation": False}
    *_, last = create(client, chat=True, max_tokens=2, stream=True, stream_options=options)
    assert last.usage.completion_tokens == 2


def test_stop_ends_the_text_before_the_stop_string(client: openai.OpenAI) -> None:
    reference = create(client, chat=False, max_tokens=8).choices[0].text
    stop = reference[len(reference) // 2:][:4]  # most likely spans a token boundary
    out = create(client, chat=False, max_tokens=8, stop=[stop, "never appears: §§§"])
    assert out.choices[0].finish_reason == "stop" and out.choices[0].text == reference[:reference.index(stop)]

    # chat streamed, read with the SDK's own stream helper: the bundled base model answers in one line, then goes
    # on to invent the next turn; with ignore_eos only the stop string can make it "stop"
    with client.chat.completions.stream(messages=CHAT, **{**GREEDY, "max_tokens": 8}, stop="\n") as stream:
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "stop" and final.message.content.strip() and "\n" not in final.message.content


def test_the_same_seed_samples_the_same_text(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        return create(client, chat=True, temperature=1.0, seed=seed).choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))  # sampled, not greedy


BAD_REQUESTS: dict[str, Callable[[openai.OpenAI], object]] = {
    "temperature": lambda client: create(client, chat=False, temperature=5),  # the engine's check
    "max_tokens": lambda client: create(client, chat=False, max_tokens=0),  # the router's own, through it
    "top_p": lambda client: create(client, chat=False, top_p=0, stream=True),  # a stream refused at its start
    "messages.0.role": lambda client: create(client, chat=True, messages=[{"role": "robot", "content": "hi"}]),
}


@pytest.mark.parametrize("field", BAD_REQUESTS)
def test_a_bad_parameter_is_a_bad_request_error_naming_it(client: openai.OpenAI, field: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        BAD_REQUESTS[field](client)
    error = info.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert error.param == field and field in error.message


def test_a_stream_the_sdk_closes_at_done_is_complete_at_the_router() -> None:
    # The SDK closes its connection as soon as it reads `data: [DONE]`, maybe before the body's end arrives; the
    # router took that for a client leaving mid-stream: it dropped the replica's connection and missed the
    # request's latency (0 to 3 of 20 SDK streams over the real engine, by load). A replica slow to end its body
    # makes it certain.
    with FakeServer(after_done_s=0.5) as fake, running_router([StaticReplica(0, fake.url)]) as url, \
            sdk_client(url) as client:
        chunks = list(client.completions.create(model="fake-model", prompt="hi", max_tokens=2, stream=True))
        assert [c.choices[0].text for c in chunks] == ["tok ", "tok "]
        wait_until(lambda: _router_requests(url) > 0, "the router counting the stream to its end")
        assert _router_requests(url) == 1


def _router_requests(url: str) -> float:
    """Completions the router saw to their end (its request-seconds histogram's count)."""
    name = 'paretoserve_router_request_seconds_count{endpoint="completions"}'
    line = next((ln for ln in httpx.get(url + "/metrics", timeout=HANG_S).text.splitlines() if ln.startswith(name)),
                None)
    return float(line.split()[-1]) if line else 0.0
