"""The 401 and 405 of /openapi.json against what the engine's app and the router in front of it really answer."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.backends import StaticReplica
from tests.openai_api.stub_engine import StubEngine
from tests.serve.helpers import running_app, running_router
from tests.waiting import HANG_S

KEYS = ApiKeys.of(["key-one"], metrics=True)  # --api-key key-one --keyed-metrics: every 401 the document lists
KEY = {"Authorization": "Bearer key-one"}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """The keyed engine app over a stub engine and the keyed router in front of it, by name."""
    with running_app(build_app(StubEngine(), ServerConfig(api_keys=KEYS))) as engine, \
            running_router([StaticReplica(0, engine)], api_keys=KEYS) as router:
        yield {"engine": engine, "router": router}


def operations(url: str) -> Iterator[tuple[str, str, dict]]:
    """(path with its parameter filled in, method, operation) of every operation the server's document lists."""
    doc = httpx.get(url + "/openapi.json", timeout=HANG_S).json()
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield path.replace("{model_id}", "default"), method.upper(), operation


@pytest.mark.parametrize("server", ["engine", "router"])
def test_a_401_is_listed_exactly_where_a_keyless_request_gets_one(servers: dict[str, str], server: str) -> None:
    url = servers[server]
    for path, method, operation in operations(url):
        r = httpx.request(method, url + path, timeout=HANG_S)
        assert (r.status_code == 401) == ("401" in operation["responses"]), (method, path, r.status_code)
        if r.status_code == 401:
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("server", ["engine", "router"])
def test_a_method_no_operation_lists_gets_the_documented_405(servers: dict[str, str], server: str) -> None:
    url = servers[server]
    listed: dict[str, set[str]] = {}
    for path, method, _ in operations(url):
        listed.setdefault(path, set()).add(method)
    doc = httpx.get(url + "/openapi.json", timeout=HANG_S).json()
    assert "Allow" in doc["components"]["responses"]["MethodNotAllowed"]["headers"]
    for path, methods in listed.items():
        for method in set(METHODS) - methods:
            r = httpx.request(method, url + path, headers=KEY, timeout=HANG_S)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.json()["error"]["code"] == "method_not_allowed"
            assert methods <= set(r.headers["allow"].replace(" ", "").split(",")), (method, path)
