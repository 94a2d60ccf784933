"""API keys through the official openai SDK, on the engine's app and on the router in front of it: no key, a wrong
key and the right key on every /v1 route; /health and /openapi.json open; /metrics open unless keyed."""

from __future__ import annotations

import argparse
from typing import Iterator

import httpx
import openai
import pytest

from paretoserve.cli.access_args import api_keys, is_loopback, warn_if_open
from paretoserve.cli.common import UsageError
from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.backends import StaticReplica
from tests.openai_api.stub_engine import StubEngine
from tests.serve.helpers import running_app, running_router
from tests.waiting import HANG_S

KEYS = ("key-one", "key-two")
REQUEST = {"model": "default", "max_tokens": 2}


@pytest.fixture(scope="module")
def engine_app_url() -> Iterator[str]:
    """The engine's app over a stub engine, keyed."""
    with running_app(build_app(StubEngine(), ServerConfig(api_keys=ApiKeys.of(KEYS)))) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_router_url(engine_app_url: str) -> Iterator[str]:
    """The router, keyed with the same keys, over the keyed engine app (the client's key reaches it)."""
    with running_router([StaticReplica(0, engine_app_url)], api_keys=ApiKeys.of(KEYS)) as url:
        yield url


@pytest.fixture(params=["engine", "router"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("engine_app_url" if request.param == "engine" else "keyed_router_url")


def client(url: str, key: str | None) -> openai.OpenAI:
    """An SDK client sending `key`; None sends no Authorization header (the SDK itself insists on a key)."""
    hooks = {"request": [lambda request: request.headers.pop("Authorization", None)]} if key is None else {}
    return openai.OpenAI(base_url=url + "/v1", api_key=key or "unused", max_retries=0, timeout=HANG_S,
                         http_client=httpx.Client(event_hooks=hooks))


ROUTES = {
    "completions": lambda c: c.completions.create(prompt="hi", **REQUEST),
    "streamed completions": lambda c: list(c.completions.create(prompt="hi", stream=True, **REQUEST)),
    "chat": lambda c: c.chat.completions.create(messages=[{"role": "user", "content": "hi"}], **REQUEST),
    "streamed chat": lambda c: list(c.chat.completions.create(messages=[{"role": "user", "content": "hi"}],
                                                              stream=True, **REQUEST)),
    "models": lambda c: c.models.list(),
    "model": lambda c: c.models.retrieve("default"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_key_is_an_openai_401(url: str, route: str, key: str | None) -> None:
    with client(url, key) as sdk, pytest.raises(openai.AuthenticationError) as caught:
        ROUTES[route](sdk)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "invalid_api_key", error
    assert "wrong-key" not in error["message"]  # the answer never repeats what was sent
    assert caught.value.response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("key", KEYS)
def test_every_given_key_is_accepted_on_every_route(url: str, route: str, key: str) -> None:
    with client(url, key) as sdk:
        assert ROUTES[route](sdk)


def test_health_openapi_and_metrics_stay_open(url: str) -> None:
    for path in ("/health", "/openapi.json", "/metrics"):
        assert httpx.get(url + path, timeout=HANG_S).status_code == 200, path


def test_an_unknown_v1_route_needs_the_key_before_it_is_a_404(url: str) -> None:
    assert httpx.get(url + "/v1/nothing", timeout=HANG_S).status_code == 401
    assert httpx.get(url + "/v1/nothing", headers={"Authorization": "Bearer key-one"},
                     timeout=HANG_S).status_code == 404


def test_keyed_metrics_need_the_key() -> None:
    keys = ApiKeys.of(KEYS, metrics=True)
    with running_app(build_app(StubEngine(), ServerConfig(api_keys=keys))) as url:
        assert httpx.get(url + "/metrics", timeout=HANG_S).status_code == 401
        assert httpx.get(url + "/metrics", headers={"Authorization": "Bearer key-two"},
                         timeout=HANG_S).status_code == 200
        assert httpx.get(url + "/health", timeout=HANG_S).status_code == 200


def test_without_keys_nothing_is_checked() -> None:
    with running_app(build_app(StubEngine(), ServerConfig())) as url, client(url, None) as sdk:
        assert sdk.models.list().data


def test_keys_match_whole_and_by_scheme() -> None:
    keys = ApiKeys.of(KEYS)
    assert keys.match("Bearer key-two") == 1
    assert keys.match("bearer key-one") == 0
    for header in (None, "", "key-one", "Basic key-one", "Bearer key-on", "Bearer key-one2", "Bearer "):
        assert keys.match(header) is None, header
    assert not ApiKeys() and not ApiKeys().guards("/v1/models")
    assert keys.guards("/v1/models") and not keys.guards("/health") and not keys.guards("/metrics")


def _args(*keys: str, keyed_metrics: bool = False) -> argparse.Namespace:
    return argparse.Namespace(api_key=list(keys) or None, keyed_metrics=keyed_metrics)


def test_keys_come_from_the_flags_else_the_environment() -> None:
    assert api_keys(_args("a", "b"), {"PARETOSERVE_API_KEY": "env"}).match("Bearer b") == 1
    assert api_keys(_args("a"), {"PARETOSERVE_API_KEY": "env"}).match("Bearer env") is None
    assert api_keys(_args(), {"PARETOSERVE_API_KEY": "env"}).match("Bearer env") == 0
    assert not api_keys(_args(), {})


@pytest.mark.parametrize("args, env, flag", [
    (_args(""), {}, "--api-key"), (_args(" k"), {}, "--api-key"), (_args(), {"PARETOSERVE_API_KEY": ""},
                                                                    "$PARETOSERVE_API_KEY"),
    (_args(keyed_metrics=True), {}, "--keyed-metrics")])
def test_a_blank_key_or_keyed_metrics_without_a_key_is_refused(args, env, flag) -> None:
    with pytest.raises(UsageError, match=flag.replace("$", r"\$")):
        api_keys(args, env)


def test_one_warning_line_for_an_open_non_loopback_address(capsys: pytest.CaptureFixture) -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        warn_if_open("engine", host, ApiKeys())
    warn_if_open("serve", "0.0.0.0", ApiKeys.of(["k"]))
    assert capsys.readouterr().err == ""
    warn_if_open("serve", "0.0.0.0", ApiKeys())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host 0.0.0.0 without an API key" in err


@pytest.mark.integration
def test_the_engine_command_takes_its_key_from_the_environment() -> None:
    from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
    from tests.conftest import ENGINE_ARGS, HEALTH_TIMEOUT_S

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EngineProcess(embedded_engine_cmd(port, "127.0.0.1", *ENGINE_ARGS), base,
                       env={"PARETOSERVE_API_KEY": "from-env"}) as engine:
        engine.wait_healthy(HEALTH_TIMEOUT_S)
        with client(base, "from-env") as sdk:
            assert sdk.completions.create(prompt="hi", **REQUEST).usage.completion_tokens == 2
        with client(base, "wrong-key") as sdk, pytest.raises(openai.AuthenticationError):
            sdk.models.list()
        assert "from-env" not in engine.output_tail()
