"""`paretoserve serve` as a real process over fake engines: the library API, shutdown, faults, CLI errors.

Each fault is timed by events (a request seen, a replica restarted), never by a wall-clock schedule, so that the
tests hold however busy the machine is."""

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
from paretoserve.serve import ReplicaServer, ServeConfig
from tests.serve.helpers import fake_cmd, get, post, wait_gone
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

TWO = min(2, len(os.sched_getaffinity(0)))


def _descendants(pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def test_replica_server_gives_one_url_and_every_pid_and_drains_on_sigterm(tmp_path):
    plan = ServeConfig(replicas=TWO, threads_per_replica=1, engine_cmd=fake_cmd("--token-delay", "0.05"))
    with ReplicaServer(plan, log_path=tmp_path / "serve.log", log_dir=tmp_path / "logs") as server:
        server.wait_healthy(HANG_S)
        pids = server.pids
        children = _descendants(server.pid)
        assert len(pids) == 1 + TWO and set(pids[1:]) <= set(children)
        assert post(server.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
        body = []
        streaming = threading.Event()

        def stream():
            with httpx.stream("POST", server.base_url + "/v1/completions", timeout=HANG_S,
                              json={"prompt": "x", "max_tokens": 20, "stream": True}) as response:
                for line in response.iter_lines():
                    body.append(line)
                    streaming.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert streaming.wait(HANG_S), "no token streamed"
        server.process.proc.send_signal(signal.SIGTERM)  # mid-stream: the request must still finish
        reader.join(HANG_S)
        status = server.process.proc.wait(HANG_S)
    assert status == 0
    assert [line for line in body if line.startswith("data:")][-1] == "data: [DONE]"
    assert sum('"text": "x"' in line for line in body) == 20
    assert wait_gone(children) == []
    logs = [tmp_path / "serve.log", *(tmp_path / "logs" / f"replica-{i}.log" for i in range(TWO))]
    assert [log.name for log in logs if "RuntimeWarning" in log.read_text()] == []  # each read: all exist


async def _steady_load(url: str, workers: int, on_tick) -> list[dict]:
    """Streamed requests from `workers` loops, each ending as ok, error (clear) or broken, until
    `on_tick(now, results)` (called every 0.05 s) returns False, or for HANG_S at most (a hang)."""
    results = []
    timeout = aiohttp.ClientTimeout(total=HANG_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        running, hang_at = True, time.monotonic() + HANG_S

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
            while running:
                results.append(await one())

        async def ticker():
            nonlocal running
            while running:
                running = on_tick(time.monotonic(), results) and time.monotonic() < hang_at
                await asyncio.sleep(0.05)

        await asyncio.gather(ticker(), *[worker() for _ in range(workers)])
    return results


def test_replicas_die_with_a_serve_process_killed_by_sigkill():
    with ReplicaServer(ServeConfig(replicas=1, threads_per_replica=1, engine_cmd=fake_cmd())) as server:
        server.wait_healthy(HANG_S)
        replicas = server.replica_pids
        os.kill(server.pid, signal.SIGKILL)  # no chance to stop them itself: the kernel's parent-death signal does
        assert wait_gone(replicas) == []


@pytest.mark.skipif(TWO < 2, reason="needs two cores for two pinned replicas")
def test_kill_9_one_replica_under_steady_load(tmp_path):
    # Replica 0's replacement starts while `held` exists and stays unhealthy until the test removes the file: every
    # request between the kill and then must be served by replica 1, however long the restart takes.
    held = tmp_path / "held"
    plan = ServeConfig(replicas=2, threads_per_replica=1,
                       engine_cmd=fake_cmd("--token-delay", "0.02", "--unhealthy-while", str(held)))
    with ReplicaServer(plan) as server:
        server.wait_healthy(HANG_S)
        victim = server.replica_pids[0]
        events = {}

        def on_tick(now, results) -> bool:
            """The fault, one step per condition met: kill, restart (held), release, rejoin; False at the end."""
            if "killed" not in events:
                if len(results) >= 12:  # the load runs on both replicas
                    held.touch()
                    os.kill(victim, signal.SIGKILL)
                    events["killed"] = now
                return True
            health = server.refresh()
            replica = health["replicas"][0] if health else {}
            if "released" not in events:
                if replica.get("restarts") == 1 and sum(r["started"] > events["killed"] for r in results) >= 12:
                    held.unlink()
                    events["released"] = now
                return True
            # back in the router's rotation: healthy, and past the ejection its dropped connections earned it
            if replica.get("healthy") and not replica.get("ejected") and replica.get("restarts") == 1:
                events["rejoined"], events["last_error"] = now, replica["last_error"]
                return False
            return True

        results = asyncio.run(_steady_load(server.base_url, 6, on_tick))
        assert "rejoined" in events, f"the killed replica did not come back: {events}"
        after = [post(server.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 1}) for _ in range(6)]
        metrics = get(server.base_url + "/metrics").text
    assert all(r["outcome"] in ("ok", "error") for r in results), [r for r in results if r["outcome"] not in
                                                                    ("ok", "error")]
    killed, released = events["killed"], events["released"]
    later = [r for r in results if killed < r["started"] and r["ended"] < released]
    assert later and all(r["outcome"] == "ok" and r["replica"] == "1" for r in later)
    assert {a.headers["x-paretoserve-replica"] for a in after} == {"0", "1"}
    assert 'paretoserve_router_replica_restarts{replica="0"} 1.0' in metrics
    assert events["last_error"] == "killed by SIGKILL"
    assert wait_gone([victim]) == []


def test_a_never_healthy_replica_is_reported_while_the_rest_serve():
    plan = ServeConfig(replicas=TWO, threads_per_replica=1, health_timeout_s=1.0,
                       engine_cmd=fake_cmd("--replica", "{replica}", "--never-healthy-replica", str(TWO - 1)))
    with ReplicaServer(plan) as server:
        seen = []

        def reported() -> bool:
            seen.append(health := server.refresh())
            return bool(health and health["healthy_replicas"] >= TWO - 1 and health["replicas"][-1]["last_error"])

        wait_until(reported, "the healthy replicas serving and the other reported", interval_s=0.1)
        health = seen[-1]
        answers = [post(server.base_url + "/v1/completions", json={"prompt": "x"}) for _ in range(4)]
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
        proc.wait_healthy(HANG_S)
        wait_until(lambda: get(proc.base_url + "/health").json()["healthy_replicas"] == TWO, "every replica healthy",
                   interval_s=0.1)
        metrics = get(proc.base_url + "/metrics").text
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

    code = ("import threading; from paretoserve.serve import ServeConfig, ReplicaServer; "
            f"s = ReplicaServer(ServeConfig(replicas=1, threads_per_replica=1, engine_cmd={fake_cmd()!r})).start(); "
            f"s.wait_healthy({HANG_S}); print(s.pid, *s.replica_pids, flush=True); threading.Event().wait()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.kill()  # no cleanup of its own: serve and its replica must still go
        parent.wait()
    assert wait_gone(pids) == []
