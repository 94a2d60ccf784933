"""The router resumes a greedy stream whose replica dies, over in-process fake replicas that speak the extension."""

import json

import httpx
import pytest

from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.resume import Relayed, is_greedy, with_resume
from tests.fakes.token_replica import TokenReplica
from tests.serve.helpers import running_router
from tests.waiting import HANG_S

pytestmark = pytest.mark.integration

GREEDY = {"prompt": "hello", "max_tokens": 12, "temperature": 0, "stream": True,
          "stream_options": {"include_usage": True}}


def _stream(url: str, body: dict, path: str = "/v1/completions") -> tuple[list, str]:
    """The client's view: every `data:` payload (decoded where it is JSON), and the raw text."""
    response = httpx.post(url + path, json=body, timeout=HANG_S)
    assert response.status_code == 200
    payloads = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    return [_json(p) for p in payloads], response.text


def _json(payload: str) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return payload  # [DONE], or the half event a dead replica left


def _text(events: list) -> str:
    return "".join(e["choices"][0]["text"] for e in events if isinstance(e, dict) and e.get("choices"))


def _pair(**dead):
    """Two fake replicas that die as `dead` says, behind one router."""
    a, b = TokenReplica(**dead), TokenReplica(**dead)
    return a, b, [StaticReplica(0, a.url), StaticReplica(1, b.url)]


def test_a_greedy_stream_continues_on_another_replica_with_every_token_once():
    a, b, replicas = _pair(die_after=3)
    with a, b, running_router(replicas) as url:
        events, raw = _stream(url, GREEDY)
        metrics = httpx.get(url + "/metrics", timeout=HANG_S).text
    assert _text(events) == "".join(f"t{i} " for i in range(12))
    assert [e for e in events if isinstance(e, dict) and e.get("usage")] == \
           [{"id": events[0]["id"], "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 12,
                                                            "total_tokens": 13}}]
    assert all(isinstance(e, dict) for e in events[:-1]) and events[-1] == "[DONE]"
    assert len({e["id"] for e in events if isinstance(e, dict)}) == 1
    assert ": tokens" not in raw and "error" not in raw
    first, resumed = sorted(a.bodies + b.bodies, key=lambda body: len(body["paretoserve_resume"]))
    assert first == {**GREEDY, "paretoserve_resume": {}}
    assert resumed == {**GREEDY, "paretoserve_resume": {"tokens": list(range(6)), "id": events[0]["id"],
                                                        "created": events[0]["created"]}}
    assert "paretoserve_router_resumes_total 1.0" in metrics


def test_chat_streams_resume_on_their_own_path():
    a, b, replicas = _pair(die_after=1)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.0, "stream": True}
    with a, b, running_router(replicas) as url:
        events, _ = _stream(url, body, "/v1/chat/completions")
    assert _text(events) == "t0 t1 t2 t3 t4 "
    assert [len(r.bodies) for r in (a, b)] == [1, 1]


def test_a_stream_that_dies_before_its_first_whole_event_starts_again():
    a, b, replicas = _pair(die_after=0)
    with a, b, running_router(replicas) as url:
        events, _ = _stream(url, GREEDY)
    assert _text(events) == "".join(f"t{i} " for i in range(12))
    resumed = next(body for body in a.bodies + b.bodies if body["paretoserve_resume"])
    assert resumed["paretoserve_resume"] == {"tokens": [], "id": None, "created": None}


@pytest.mark.parametrize("temperature", [None, 0.7])
def test_a_sampled_stream_ends_with_an_error_event(temperature):
    a, b, replicas = _pair(die_after=2)
    body = {k: v for k, v in {**GREEDY, "temperature": temperature}.items() if v is not None}
    with a, b, running_router(replicas) as url:
        events, _ = _stream(url, body)
    assert _text(events) == "t0 t1 t2 t3 "
    assert "failed mid-response" in events[-2]["error"]["message"] and events[-1] == "[DONE]"
    assert len(a.bodies + b.bodies) == 1 and "paretoserve_resume" not in (a.bodies + b.bodies)[0]


def test_a_stream_is_resumed_once_at_most():
    a, b, replicas = _pair(die_after=2, resumed_dies=True)
    with a, b, running_router(replicas) as url:
        events, _ = _stream(url, GREEDY)
    assert _text(events) == "".join(f"t{i} " for i in range(8))
    assert events[-2]["error"]["code"] == "replica_failed"
    assert len(a.bodies) + len(b.bodies) == 2


def test_a_replica_without_the_extension_is_not_resumed():
    a, b, replicas = _pair(die_after=2, token_ids=False)
    with a, b, running_router(replicas) as url:
        events, _ = _stream(url, GREEDY)
    assert _text(events) == "t0 t1 t2 t3 " and "error" in events[-2]
    assert len(a.bodies) + len(b.bodies) == 1


def test_resume_off_sends_bodies_untouched():
    a = TokenReplica()
    with a, running_router([StaticReplica(0, a.url)], resume_streams=False) as url:
        events, _ = _stream(url, GREEDY)
    assert a.bodies == [GREEDY] and events[-1] == "[DONE]"


def test_greedy_means_temperature_zero():
    assert is_greedy({"temperature": 0}) and is_greedy({"temperature": 0.0})
    assert not any(is_greedy(d) for d in ({}, {"temperature": None}, {"temperature": False}, {"temperature": 0.5}))


def test_the_field_is_spliced_in_last_so_it_wins():
    body = b' {"prompt": "x", "paretoserve_resume": {"tokens": [9]}}\n'
    assert json.loads(with_resume(body, {})) == {"prompt": "x", "paretoserve_resume": {}}
    assert with_resume('{"prompt": "x"}'.encode("utf-16"), {}) is None


def test_events_are_relayed_whole_and_their_token_ids_kept():
    relayed = Relayed()
    first = b'data: {"id": "c", "created": 5}'
    assert relayed.feed(b": tokens 1 2\n" + first[:10]) == b""
    assert relayed.feed(first[10:] + b"\n\n: tokens 3\ndata: {}\n\n: tok") == first + b"\n\ndata: {}\n\n"
    assert relayed.resumable
    assert relayed.resume() == {"tokens": [1, 2, 3], "id": "c", "created": 5}
    assert relayed.feed(b'data: {"usage": {}}\n\n') == b'data: {"usage": {}}\n\n' and not relayed.resumable


def test_one_whole_event_takes_the_short_way_with_the_same_result():
    events = [b': tokens 4\ndata: {"id": "c", "created": 1}\n\n', b": tokens 5 6\ndata: {}\n\n"]
    short, split = Relayed(), Relayed()
    assert [short.feed(e) for e in events] == [b'data: {"id": "c", "created": 1}\n\n', b"data: {}\n\n"]
    assert split.feed(events[0][:3]) + split.feed(events[0][3:] + events[1]) == \
        b'data: {"id": "c", "created": 1}\n\ndata: {}\n\n'
    assert short.resume() == split.resume() == {"tokens": [4, 5, 6], "id": "c", "created": 1}
