"""`paretoserve serve` as a real process over fake engines: the library API, shutdown, faults, CLI errors."""

import asyncio
import json
import os
import signal
import threading
import time

import aiohttp
import httpx
import psutil
import pytest

from paretoserve.cli import main
from paretoserve.engine_process import EngineProcess, free_port
from paretoserve.serve import ReplicaPlan, ReplicaServer
from tests.serve.helpers import fake_cmd, wait_gone

pytestmark = pytest.mark.integration

TWO = min(2, len(os.sched_getaffinity(0)))


def _descendants(pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def test_replica_server_gives_one_url_and_every_pid_and_drains_on_sigterm(tmp_path):
    plan = ReplicaPlan(replicas=TWO, threads_per_replica=1, engine_cmd=fake_cmd("--token-delay", "0.05"))
    with ReplicaServer(plan, log_path=tmp_path / "serve.log", log_dir=tmp_path / "logs") as server:
        server.wait_healthy(30)
        pids = server.pids
        children = _descendants(server.pid)
        assert len(pids) == 1 + TWO and set(pids[1:]) <= set(children)
        assert httpx.post(server.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
        body = []

        def stream():
            with httpx.stream("POST", server.base_url + "/v1/completions", timeout=20,
                              json={"prompt": "x", "max_tokens": 20, "stream": True}) as response:
                for line in response.iter_lines():
                    body.append(line)

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 10
        while not body and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.proc.send_signal(signal.SIGTERM)  # mid-stream: the request must still finish
        reader.join(20)
        status = server.process.proc.wait(30)
    assert status == 0
    assert [line for line in body if line.startswith("data:")][-1] == "data: [DONE]"
    assert sum('"text": "x"' in line for line in body) == 20
    assert wait_gone(children) == []
    logs = [tmp_path / "serve.log", *(tmp_path / "logs" / f"replica-{i}.log" for i in range(TWO))]
    assert [log.name for log in logs if "RuntimeWarning" in log.read_text()] == []  # each read: all exist


async def _steady_load(url: str, seconds: float, workers: int, on_tick) -> list[dict]:
    """Streamed requests from `workers` loops for `seconds`; each ends as ok, error (clear) or broken."""
    results = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stop_at = time.monotonic() + seconds

        async def one() -> dict:
            started = time.monotonic()
            try:
                async with session.post(url + "/v1/completions",
                                        json={"prompt": "x", "max_tokens": 8, "stream": True}) as response:
                    text = (await response.read()).decode()
                    replica = response.headers.get("x-paretoserve-replica")
                    if response.status != 200:
                        outcome = "error" if "error" in json.loads(text) else "broken"
                    elif '"error"' in text:
                        outcome = "error"
                    else:
                        outcome = "ok" if text.count('"text": "x"') == 8 and "[DONE]" in text else "broken"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                outcome, replica = f"broken: {type(exc).__name__}", None
            return {"started": started, "ended": time.monotonic(), "outcome": outcome, "replica": replica}

        async def worker():
            while time.monotonic() < stop_at:
                results.append(await one())

        async def ticker():
            while time.monotonic() < stop_at:
                on_tick(time.monotonic())
                await asyncio.sleep(0.05)

        await asyncio.gather(ticker(), *[worker() for _ in range(workers)])
    return results


def test_replicas_die_with_a_serve_process_killed_by_sigkill():
    with ReplicaServer(ReplicaPlan(replicas=1, threads_per_replica=1, engine_cmd=fake_cmd())) as server:
        server.wait_healthy(30)
        replicas = server.replica_pids
        os.kill(server.pid, signal.SIGKILL)  # no chance to stop them itself: the kernel's parent-death signal does
        assert wait_gone(replicas) == []


@pytest.mark.skipif(TWO < 2, reason="needs two cores for two pinned replicas")
def test_kill_9_one_replica_under_steady_load():
    plan = ReplicaPlan(replicas=2, threads_per_replica=1, engine_cmd=fake_cmd("--token-delay", "0.02"))
    with ReplicaServer(plan) as server:
        server.wait_healthy(30)
        victim = server.replica_pids[0]
        events = {}

        def on_tick(now):
            if "killed" not in events and now >= events.setdefault("start", now) + 1.0:
                os.kill(victim, signal.SIGKILL)
                events["killed"] = now
            elif "killed" in events and "rejoined" not in events:
                health = server.refresh()
                replica = health["replicas"][0] if health else {}
                if replica.get("healthy") and replica.get("restarts") == 1:
                    events["rejoined"], events["last_error"] = now, replica["last_error"]

        results = asyncio.run(_steady_load(server.base_url, 4.0, 6, on_tick))
        assert "rejoined" in events, "the killed replica did not come back within the run"
        after = [httpx.post(server.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 1})
                 for _ in range(6)]
        metrics = httpx.get(server.base_url + "/metrics").text
    assert all(r["outcome"] in ("ok", "error") for r in results), [r for r in results if r["outcome"] not in
                                                                    ("ok", "error")]
    assert max(r["ended"] - r["started"] for r in results) < 10
    killed, rejoined = events["killed"], events["rejoined"]
    later = [r for r in results if killed < r["started"] < rejoined - 0.3]  # margin: rejoining is seen by polling
    assert later and all(r["outcome"] == "ok" and r["replica"] == "1" for r in later)
    assert {a.headers["x-paretoserve-replica"] for a in after} == {"0", "1"}
    assert 'paretoserve_router_replica_restarts{replica="0"} 1.0' in metrics
    assert events["last_error"] == "killed by SIGKILL"
    assert wait_gone([victim]) == []


def test_a_never_healthy_replica_is_reported_while_the_rest_serve():
    plan = ReplicaPlan(replicas=TWO, threads_per_replica=1, health_timeout_s=1.0,
                       engine_cmd=fake_cmd("--replica", "{replica}", "--never-healthy-replica", str(TWO - 1)))
    with ReplicaServer(plan) as server:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            health = server.refresh()
            if health and health["healthy_replicas"] >= TWO - 1 and health["replicas"][-1]["last_error"]:
                break
            time.sleep(0.1)
        answers = [httpx.post(server.base_url + "/v1/completions", json={"prompt": "x"}) for _ in range(4)]
    sick = health["replicas"][-1]
    assert not sick["healthy"] and "not healthy 1 s after its start" in sick["last_error"]
    if TWO == 2:
        assert health["status"] == "degraded"
        assert all(a.status_code == 200 and a.headers["x-paretoserve-replica"] == "0" for a in answers)


def test_plan_file_from_advise(tmp_path):
    advice = tmp_path / "advice.json"
    advice.write_text(json.dumps({"replica_plan": {"replicas": TWO, "max_batch": 3, "threads_per_replica": 1}}))
    port = free_port()
    cmd = ["python", "-m", "paretoserve", "serve", "--plan", str(advice), "--port", str(port),
           "--engine-cmd", fake_cmd("--max-batch", "{max_batch}")]
    cmd[0] = __import__("sys").executable
    with EngineProcess(cmd, f"http://127.0.0.1:{port}") as proc:
        proc.wait_healthy(30)
        deadline = time.monotonic() + 20
        while httpx.get(proc.base_url + "/health").json()["healthy_replicas"] < TWO:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        metrics = httpx.get(proc.base_url + "/metrics").text
        children = _descendants(proc.proc.pid)
    assert 'fake_max_batch{replica="0"} 3.0' in metrics
    assert wait_gone(children) == []


@pytest.mark.parametrize("args, message", [
    (["--replicas", str(len(os.sched_getaffinity(0)) + 1), "--threads-per-replica", "1"], "cores"),
    (["--replicas", "0"], "--replicas must be an integer in [1, 256]"),
    (["--mem-fraction", "2"], "--mem-fraction"),
    (["--plan", "/no/such/advice.json"], "--plan: cannot read"),
])
def test_cli_mistakes_are_one_line_errors(capsys, args, message):
    status = main(["serve", "--port", str(free_port()), "--engine-cmd", fake_cmd(), *args])
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err


def test_cli_refuses_a_taken_port(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        status = main(["serve", "--port", str(s.getsockname()[1]), "--engine-cmd", fake_cmd()])
    assert status == 2 and "--port" in capsys.readouterr().err


def test_cli_refuses_a_template_without_port(capsys):
    assert main(["serve", "--engine-cmd", "engine --listen 80"]) == 2
    assert "{port}" in capsys.readouterr().err


def test_serve_dies_with_the_process_that_started_it():
    import subprocess
    import sys

    code = ("import sys, time; from paretoserve.serve import ReplicaPlan, ReplicaServer; "
            f"s = ReplicaServer(ReplicaPlan(replicas=1, threads_per_replica=1, engine_cmd={fake_cmd()!r})).start(); "
            "s.wait_healthy(30); print(s.pid, *s.replica_pids, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.kill()  # no cleanup of its own: serve and its replica must still go
        parent.wait()
    assert wait_gone(pids) == []
