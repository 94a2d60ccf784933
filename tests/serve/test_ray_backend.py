"""`serve --backend ray`: the plan as one Ray Serve deployment (serve/ray_replica.py, serve/ray_backend.py)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from paretoserve.cli import main
from paretoserve.engine_process import EngineProcess, free_port, wait_until
from paretoserve.presets import PresetError
from paretoserve.presets.llama_server import find_llama_server
from paretoserve.serve.config import PlanError, ServeConfig
from tests.conftest import HEALTH_TIMEOUT_S
from tests.serve.helpers import wait_gone
from tests.waiting import HANG_S

serve = pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")

from paretoserve.serve.ray_backend import RayOptions, ray_plan  # noqa: E402
from paretoserve.serve.ray_replica import REPLICA_HEADER, RayPlan, build, replica_cores  # noqa: E402


def test_replicas_take_disjoint_cores_by_local_rank_and_wrap_when_the_node_is_full():
    cores = [0, 1, 2, 3]
    assert [replica_cores(rank, 2, cores) for rank in range(2)] == [(0, 1), (2, 3)]
    assert replica_cores(2, 2, cores) == (0, 1)  # a third replica on a 4-core node shares
    assert replica_cores(0, 8, cores) == (0, 1, 2, 3)


def test_the_deployment_caps_each_replica_at_its_batch_and_bounds_the_queue():
    app = build(RayPlan(replicas=3, max_batch=24, threads_per_replica=1, max_queued_requests=100).args())
    deployment = app._bound_deployment  # the public Deployment that serve.run deploys
    assert deployment.num_replicas == 3
    assert deployment.max_ongoing_requests == 24  # not Ray's default of 5
    assert deployment.max_queued_requests == 100
    assert deployment.ray_actor_options["num_cpus"] == 1
    assert "num_gpus" not in deployment.ray_actor_options


def test_a_gpu_engine_gets_its_share_of_a_gpu_and_its_environment():
    plan = ServeConfig(replicas=3, max_batch=8, threads_per_replica=1, engine="vllm", model="/models/m")
    app = build(ray_plan(plan, 1, 0.333, RayOptions()).args())
    options = app._bound_deployment.ray_actor_options
    assert options["num_gpus"] == 0.333
    assert options["runtime_env"]["env_vars"]["HF_HUB_OFFLINE"] == "1"


def test_plans_the_ray_backend_cannot_run_are_refused_in_one_line():
    with pytest.raises(PlanError, match="--engine-cmd"):
        ray_plan(ServeConfig(engine_cmd="engine --port {port}"), 1, 0.0, RayOptions())
    with pytest.raises(PlanError, match="unknown field"):
        RayPlan.from_args({"replicas": 2, "batch": 8})
    with pytest.raises(PlanError, match="--max-batch"):
        build({"max_batch": 0})


def test_ray_flags_without_the_ray_backend_are_refused(capsys):
    assert main(["serve", "--ray-address", "auto", "--replicas", "1"]) == 2
    assert "--backend ray" in capsys.readouterr().err


def test_without_ray_the_error_names_the_extra():
    code = ("import sys; sys.modules['ray'] = None\n"
            "from paretoserve.cli import main\n"
            "sys.exit(main(['serve', '--backend', 'ray', '--port', '0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2
    assert '.[ray]' in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


class RayServe:
    """`paretoserve serve --backend ray ARGS` in a child process: its URL, its process tree once up."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "paretoserve", "serve", "--backend", "ray", "--port", str(self.port), *args]
        env = {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = EngineProcess(cmd, self.url, env=env)
        self.tree: list[psutil.Process] = []
        self.up_s = self.stop_s = 0.0

    def __enter__(self) -> RayServe:
        self.proc.start()
        started = time.monotonic()
        assert wait_until(lambda: "up in" in self.proc.output_tail(20000, 400), HEALTH_TIMEOUT_S,
                          self._raise_if_exited), self.proc.output_tail()
        self.up_s = time.monotonic() - started
        self.tree = _descendants(self.proc.child.pid)
        return self

    def processes(self, name: str, count: int = 1) -> list[psutil.Process]:
        """The processes of its tree whose command line names `name`, waiting until there are `count`: Ray renames
        a worker process only once it has taken its actor, which may come after "up in" on a busy machine."""
        def found() -> list[psutil.Process]:
            self.tree = list({p.pid: p for p in [*self.tree, *_descendants(self.proc.child.pid)]}.values())
            return [p for p in self.tree if name in _cmdline(p)]
        wait_until(lambda: len(found()) >= count, HANG_S, self._raise_if_exited)
        return found()

    def terminate(self) -> int:
        """SIGTERM, and its exit status; asserts that every process it started is gone."""
        stopping = time.monotonic()
        self.proc.child.send_signal(signal.SIGTERM)
        status = self.proc.child.wait(HANG_S)
        self.stop_s = time.monotonic() - stopping
        assert not wait_gone([p.pid for p in self.tree]), "processes left after SIGTERM"
        return status

    def __exit__(self, *exc) -> None:
        self.proc.stop()

    def _raise_if_exited(self) -> None:
        if self.proc.child.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.child.returncode}:\n{self.proc.output_tail()}")


@pytest.mark.integration
def test_two_replicas_answer_through_rays_proxy_and_sigterm_leaves_no_ray_process():
    with RayServe("--replicas", "2", "--threads-per-replica", "1", "--max-batch", "4", "--ctx-per-seq", "64",
                  "--api-key", "client-key") as ray:
        replicas = ray.processes("ServeReplica", 2)
        pinned = sorted(tuple(p.cpu_affinity()) for p in replicas)

        def complete(i: int, key: str = "client-key") -> httpx.Response:
            return httpx.post(ray.url + "/v1/completions", timeout=HANG_S, headers={"Authorization": f"Bearer {key}"},
                              json={"prompt": f"Hi {i}", "max_tokens": 4})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(complete, range(12)))
        refused = complete(0, key="wrong-key")  # each replica checks the clients' keys behind Ray's proxy
        health = httpx.get(ray.url + "/health", timeout=HANG_S)
        metrics = httpx.get(ray.url + "/metrics", timeout=HANG_S)
        status = ray.terminate()
    assert status == 0, ray.proc.output_tail()
    assert [a.status_code for a in answers] == [200] * 12
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert all(a.json()["usage"]["completion_tokens"] == 4 for a in answers)
    served_by = {a.headers[REPLICA_HEADER.decode()].split()[0] for a in answers}
    assert len(served_by) == 2, served_by  # Ray's router used both replicas
    assert health.status_code == 200
    labels = {line.split('replica="')[1].split('"')[0] for line in metrics.text.splitlines()
              if line.startswith("paretoserve_max_batch{")}
    assert labels == served_by  # /metrics through the proxy: every replica's, labelled (the metrics board)
    assert len(replicas) == 2
    assert all(len(cores) == 1 for cores in pinned)
    assert pinned[0] != pinned[1] or len(os.sched_getaffinity(0)) < 2
    print(f"ray backend: 2 replicas up in {ray.up_s:.1f} s, stopped {ray.stop_s:.1f} s after SIGTERM")


@pytest.mark.integration
def test_on_a_given_cluster_the_plan_is_deployed_and_deleted_and_the_cluster_keeps_running():
    import ray
    from ray import serve as ray_serve
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        raylet = cluster.head_node.all_processes["raylet"][0].process
        with RayServe("--ray-address", cluster.address, "--replicas", "1", "--threads-per-replica", "1",
                      "--max-batch", "2", "--ctx-per-seq", "64") as served:
            answer = httpx.post(served.url + "/v1/completions", timeout=HANG_S,
                                json={"prompt": "Hi", "max_tokens": 2})
            served.proc.child.send_signal(signal.SIGTERM)
            status = served.proc.child.wait(HANG_S)
        assert status == 0 and answer.status_code == 200
        assert raylet.poll() is None  # the cluster is someone else's: it keeps running
        ray.init(address=cluster.address, logging_level="WARNING")
        assert "paretoserve" not in ray_serve.status().applications  # only its application is gone
    finally:
        if ray.is_initialized():
            ray_serve.shutdown()
            ray.shutdown()
        cluster.shutdown()


def _llama_server() -> bool:
    try:
        find_llama_server()
    except PresetError:
        return False
    return True


@pytest.mark.integration
@pytest.mark.skipif(not _llama_server(), reason="llama-server is not installed (the llama-server extra)")
def test_an_external_engine_runs_as_the_replicas_child_and_is_relayed():
    with RayServe("--engine", "llama-server", "--replicas", "1", "--threads-per-replica", "1", "--max-batch", "2",
                  "--ctx-per-seq", "64") as ray:
        engines = ray.processes("llama-server")
        answer = httpx.post(ray.url + "/v1/completions", timeout=HANG_S, json={"prompt": "Hi", "max_tokens": 3})
        models = httpx.get(ray.url + "/v1/models", timeout=HANG_S)
        status = ray.terminate()
    assert status == 0
    assert len(engines) == 1 and answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 3
    assert models.status_code == 200 and models.json()["data"]


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # a short-lived helper that ended meanwhile
        return ""
