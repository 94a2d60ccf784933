"""Keys between the router and its engines: each preset gets the router's own key its own way (an environment
variable, or SGLang's flag), a client's key never reaches a replica, and a keyed router serves in front of keyed
engines whose ports refuse everyone else."""

from __future__ import annotations

import httpx
import openai
import pytest

from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.config import RouterConfig, ServeConfig
from paretoserve.serve.replica_server import ReplicaServer
from paretoserve.serve.runner import with_replica_key
from tests.bench.fake_server import FakeServer
from tests.serve.helpers import fake_cmd, running_router
from tests.waiting import HANG_S

BODY = {"model": "default", "prompt": "hi", "max_tokens": 2}


@pytest.mark.parametrize("engine, variable", [("embedded", "PARETOSERVE_API_KEY"), ("vllm", "VLLM_API_KEY"),
                                              ("llama-server", "LLAMA_API_KEY")])
def test_presets_that_read_a_key_from_their_environment_get_it_there(engine: str, variable: str) -> None:
    plan = ServeConfig(engine=engine, api_key="replica-key")
    assert plan.takes_api_key and plan.env[variable] == "replica-key"
    assert variable not in ServeConfig(engine=engine).env


def test_sglang_gets_its_key_as_its_flag() -> None:
    argv = ServeConfig(engine="sglang", model="/models/m", api_key="replica-key").command(0, 9000, 1)
    assert argv[-2:] == ["--api-key", "replica-key"]
    assert "--api-key" not in ServeConfig(engine="sglang", model="/models/m").command(0, 9000, 1)


def test_a_template_takes_the_key_where_it_says_api_key() -> None:
    plan = ServeConfig(engine_cmd="engine --port {port} --key {api_key}", api_key="k")
    assert plan.takes_api_key and plan.command(0, 9000, 1)[-2:] == ["--key", "k"]
    assert not ServeConfig(engine_cmd="engine --port {port}").takes_api_key


def test_the_key_never_shows_in_a_repr() -> None:
    plan, config = with_replica_key(ServeConfig(), RouterConfig())
    assert plan.api_key is not None and config.replica_key == plan.api_key and len(plan.api_key) >= 32
    assert plan.api_key not in repr(plan) + repr(config)
    untouched = ServeConfig(engine_cmd="engine --port {port}")
    assert with_replica_key(untouched, RouterConfig()) == (untouched, RouterConfig())  # the client's key goes on


def test_a_client_key_stays_at_a_router_that_holds_its_replicas_key() -> None:
    with FakeServer() as replica, running_router([StaticReplica(0, replica.url)], api_keys=ApiKeys.of(["client"]),
                                                 replica_key="replica") as url:
        answer = httpx.post(url + "/v1/completions", json=BODY, headers={"Authorization": "Bearer client"},
                            timeout=HANG_S)
        assert answer.status_code == 200
        assert replica.state.bodies  # it got there
        assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer client"},
                         timeout=HANG_S).status_code == 200


@pytest.mark.integration
def test_a_keyed_router_in_front_of_keyed_engines(tmp_path) -> None:
    plan = ServeConfig(replicas=1, threads_per_replica=1, max_batch=2, ctx_per_seq=64, pin=False)
    with ReplicaServer(plan, log_path=tmp_path / "serve.log", api_key="client-key") as server:
        server.wait_healthy(HANG_S)
        replica_url = server.refresh()["replicas"][0]["url"]
        sdk = openai.OpenAI(base_url=server.base_url + "/v1", api_key="client-key", max_retries=0, timeout=HANG_S)
        assert sdk.completions.create(prompt="hi", max_tokens=2, model="default").usage.completion_tokens == 2
        assert sdk.models.list().data
        for key in (None, "client-key"):  # the engine's own port takes neither the client's key nor none
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            assert httpx.post(replica_url + "/v1/completions", json=BODY, headers=headers,
                              timeout=HANG_S).status_code == 401
        assert httpx.get(server.base_url + "/metrics", timeout=HANG_S).status_code == 200
        assert "client-key" not in server.output_tail(64000)


@pytest.mark.integration
def test_serve_with_a_template_engine_forwards_the_clients_key(tmp_path) -> None:
    plan = ServeConfig(replicas=1, threads_per_replica=1, engine_cmd=fake_cmd(), pin=False)
    with ReplicaServer(plan, api_key="client-key") as server:
        server.wait_healthy(HANG_S)
        assert httpx.post(server.base_url + "/v1/completions", json=BODY, timeout=HANG_S).status_code == 401
        assert httpx.post(server.base_url + "/v1/completions", json=BODY, timeout=HANG_S,
                          headers={"Authorization": "Bearer client-key"}).status_code == 200
