"""Generated requests against the real engine and the router in front of it: never a 5xx, never a hang.

schemathesis draws each request from the /openapi.json the engine serves: bodies that fit the schema
and bodies that break it (wrong types, missing fields, values out of range). Each one goes to the
engine and through the router, a few at a time (so odd requests also share batches), while the next
ones are drawn; both servers must still serve afterwards.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings  # schemathesis depends on it
from hypothesis import strategies as st

from paretoserve.serve.backends import StaticReplica
from tests.openai_api.api_helpers import CTX_PER_SEQ, completion, idle, wait_for
from tests.serve.helpers import running_router
from tests.waiting import HANG_S  # one request: only a hang takes this long

pytestmark = pytest.mark.integration

EXAMPLES = 1000  # each goes to both servers
IN_FLIGHT = 6  # cases at once: well inside the engine's queue, so none is a 429
MAX_TOKENS = 3  # keeps the run short; a longer generation exercises nothing the fuzzer is after


def short_generation(body: object) -> None:
    """Cap the tokens a generated body asks for (absent means 16 on completions, the whole context on chat)."""
    if not isinstance(body, dict):
        return
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if type(value) is int and MAX_TOKENS < value <= CTX_PER_SEQ:
            body[key] = MAX_TOKENS
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = MAX_TOKENS


class Sender:
    """Sends each case to every server in turn from a worker thread, at most IN_FLIGHT cases at once,
    and tallies what came back."""

    def __init__(self, servers: dict[str, str], headers: dict[str, str] | None = None) -> None:
        self.servers = servers
        self.headers = headers or {}  # sent with every case (an API key)
        self.statuses: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._pool = ThreadPoolExecutor(IN_FLIGHT)
        self._local = threading.local()
        self._lock = threading.Lock()

    def submit(self, case) -> None:
        self._slots.acquire()
        self._pool.submit(self._send, case)

    def by_status(self, server: str) -> collections.Counter:
        counts: collections.Counter = collections.Counter()
        for (s, _, status), n in self.statuses.items():
            if s == server:
                counts[status] += n
        return counts

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _send(self, case) -> None:
        try:
            session = getattr(self._local, "session", None) or requests.Session()
            session.headers.update(self.headers)
            self._local.session = session
            for server, url in self.servers.items():
                try:
                    status = case.call(base_url=url, session=session, timeout=HANG_S).status_code
                except requests.RequestException as exc:  # a timeout or a dropped connection
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[server, case.operation.label, status] += 1
                    if not isinstance(status, int) or status >= 500:
                        self.failures.append(f"{server} {status}: {case.as_curl_command()}"[:600])
        finally:
            self._slots.release()


def test_generated_requests_get_no_5xx_from_the_engine_or_the_router(engine_url: str) -> None:
    schema = schemathesis.openapi.from_url(engine_url + "/openapi.json")
    cases = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
                      schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    with running_router([StaticReplica(0, engine_url)]) as router_url:
        sender = Sender({"engine": engine_url, "router": router_url})
        sent = send_generated(cases, sender, EXAMPLES)
        print({server: dict(sorted(counts.items(), key=str)) for server, counts in sent.items()})  # -s shows it
        assert not sender.failures, f"{len(sender.failures)} failures:\n" + "\n".join(sender.failures[:10])
        assert min(sum(counts.values()) for counts in sent.values()) >= EXAMPLES, sent
        wait_for(engine_url, idle, "an idle engine after the generated requests")
        for url in (engine_url, router_url):  # both still serve
            assert completion(url, max_tokens=2, ignore_eos=True, temperature=0)["usage"]["completion_tokens"] == 2


KEYED_EXAMPLES = 300  # the unkeyed run above covers the schema; this one shows the key check changes no answer


def test_generated_requests_with_a_key_get_no_5xx_and_no_401(start_engine) -> None:
    from paretoserve.openai_api.auth import ApiKeys
    from tests.conftest import ENGINE_ARGS

    engine_url = start_engine(*ENGINE_ARGS, "--api-key", "fuzz-key")
    schema = schemathesis.openapi.from_url(engine_url + "/openapi.json")  # open, as /health is
    cases = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
                      schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    with running_router([StaticReplica(0, engine_url)], api_keys=ApiKeys.of(["fuzz-key"])) as router_url:
        sender = Sender({"engine": engine_url, "router": router_url}, {"Authorization": "Bearer fuzz-key"})
        sent = send_generated(cases, sender, KEYED_EXAMPLES)
        assert not sender.failures, f"{len(sender.failures)} failures:\n" + "\n".join(sender.failures[:10])
        assert all(counts[401] == 0 and counts[200] > 0 for counts in sent.values()), sent


def send_generated(cases, sender: Sender, examples: int) -> dict:
    """Send `examples` generated requests to every server of `sender`; the count of each status, by server."""

    @given(cases)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def send(case) -> None:
        short_generation(case.body)
        sender.submit(case)

    try:
        send()
    finally:
        sender.close()
    return {server: sender.by_status(server) for server in sender.servers}
