"""The plan on several Ray nodes, on one machine: `ray.cluster_utils.Cluster` with two nodes of 1 CPU each, the
deployment built by serve/ray_replica.py, requests through Ray's proxy on the head node."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from paretoserve.engine_process import free_port, wait_until
from tests.conftest import HEALTH_TIMEOUT_S
from tests.serve.helpers import wait_gone
from tests.waiting import HANG_S

pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")

import ray  # noqa: E402
from ray import serve  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from paretoserve.serve.ray_backend import RAY_ENV  # noqa: E402
from paretoserve.serve.ray_replica import APP_NAME, DEPLOYMENT_NAME, REPLICA_HEADER, RayPlan, build  # noqa: E402

pytestmark = pytest.mark.integration

PLAN = RayPlan(replicas=2, max_batch=4, threads_per_replica=1, ctx_per_seq=64)
BODY = {"prompt": "Hello", "max_tokens": 8}


@dataclass
class Deployed:
    cluster: Cluster
    url: str
    up_s: float
    node_ids: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def deployed(monkeypatch_module):
    for name, value in RAY_ENV.items():
        monkeypatch_module.setenv(name, value)
    started = time.monotonic()
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. the session's shared engine
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        port = free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port},
                    logging_config={"log_level": "WARNING"})
        serve.run(build(PLAN.args()), name=APP_NAME, route_prefix="/",
                  logging_config={"log_level": "WARNING", "enable_access_log": False})
        yield Deployed(cluster, f"http://127.0.0.1:{port}", time.monotonic() - started,
                       {cluster.head_node.node_id, worker.node_id})
    finally:
        started_here = {p.pid: _cmdline(p) for p in psutil.Process().children(recursive=True)
                        if p.pid not in before}  # raylets, workers
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        cluster.shutdown()
    left = wait_gone(list(started_here))
    assert not left, f"Ray processes left after the cluster's shutdown: {[started_here[p] for p in left]}"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:200]
    except psutil.Error:
        return "?"


def served_by(response: httpx.Response) -> tuple[str, str]:
    """(replica, node) from the replica's header."""
    tag = response.headers[REPLICA_HEADER.decode()].split()
    return tag[0], tag[1].removeprefix("node=")


def test_replicas_spread_over_both_nodes_and_requests_reach_both(deployed):
    # Ray's proxy prefers the replica on its own node while it has room (max_ongoing_requests = 4): twice as
    # many clients overflow to the other node.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.post(deployed.url + "/v1/completions", json=BODY, timeout=HANG_S),
                                range(24)))
    assert [a.status_code for a in answers] == [200] * 24
    per_node = {n: sum(served_by(a)[1] == n for a in answers) for n in {served_by(a)[1] for a in answers}}
    print(f"cluster: 2 nodes up and the deployment ready in {deployed.up_s:.1f} s; requests per node: {per_node}")
    assert set(per_node) == {n[:12] for n in deployed.node_ids}  # one replica on each 1-CPU node, both used


class Load:
    """Clients that send completions through the proxy back to back, recording every outcome."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.stop = url, threading.Event()
        self.outcomes: list[tuple[float, int | str, str | None]] = []  # (time, status or error, replica)
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(timeout=HANG_S) as client:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    answer = client.post(self.url + "/v1/completions", json=BODY)
                    replica = served_by(answer)[0] if REPLICA_HEADER.decode() in answer.headers else None
                    self.outcomes.append((t, answer.status_code, replica))
                except httpx.HTTPError as exc:
                    self.outcomes.append((t, type(exc).__name__, None))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(HANG_S)


def replica_actors() -> list[str]:
    prefix = f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT_NAME}#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]


def running_replicas() -> int:
    status = serve.status().applications[APP_NAME].deployments[DEPLOYMENT_NAME]
    return status.replica_states.get("RUNNING", 0)


def test_a_killed_replica_actor_is_restarted_and_later_requests_succeed(deployed):
    before = replica_actors()
    assert len(before) == 2
    # 8 clients: more than one replica holds (4), so the proxy, which prefers its own node, uses both nodes and the
    # replacement gets requests wherever it lands
    with Load(deployed.url, clients=8) as load:
        assert wait_until(lambda: len(load.outcomes) >= 16, HEALTH_TIMEOUT_S)  # the load runs on both replicas
        victim = before[0]
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        assert wait_until(lambda: running_replicas() == 2 and len(set(replica_actors()) - set(before)) == 1,
                          HEALTH_TIMEOUT_S), serve.status()
        replaced_s = time.monotonic() - killed_at
        new_tag = (set(replica_actors()) - set(before)).pop().rsplit("#", 1)[1]
        assert wait_until(lambda: any(r == new_tag for _, _, r in load.outcomes), HEALTH_TIMEOUT_S)
        served_s = time.monotonic() - killed_at
        assert wait_until(lambda: sum(o[0] > killed_at + served_s for o in load.outcomes) >= 8, HEALTH_TIMEOUT_S)
    after = [o for o in load.outcomes if o[0] > killed_at + served_s]
    failed = [o for o in load.outcomes if o[1] != 200]
    later = [httpx.post(deployed.url + "/v1/completions", json=BODY, timeout=HANG_S) for _ in range(6)]
    assert victim.rsplit("#", 1)[1] not in {served_by(a)[0] for a in later}
    assert [a.status_code for a in later] == [200] * 6
    assert after and all(o[1] == 200 for o in after), after
    assert len(failed) <= 8, failed  # at most the requests in flight on the killed replica, and its queue
    print(f"killed replica {victim.rsplit('#', 1)[1]} under 8 clients: {len(load.outcomes)} requests, "
          f"{len(failed)} failed ({sorted({str(o[1]) for o in failed})}); replaced after {replaced_s:.1f} s, "
          f"the new replica served after {served_s:.1f} s")
