"""The supervisor with real fake-engine processes: pinning, health, restarts, MPS, no orphans."""

import os
import signal
import stat

import httpx
import psutil
import pytest

from paretoserve.engine_process import LaunchError
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.supervisor import Supervisor
from tests.serve.helpers import fake_cmd, post, wait_gone
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

FAST = dict(health_interval_s=0.1, restart_backoff_s=(0.2, 1.0), stop_grace_s=3.0, threads_per_replica=1)


def test_replicas_run_pinned_to_their_own_cores_and_stop_without_orphans(tmp_path):
    cores = len(os.sched_getaffinity(0))
    n = min(2, cores)
    with Supervisor(ServeConfig(replicas=n, engine_cmd=fake_cmd(), **FAST), log_dir=tmp_path) as supervisor:
        supervisor.wait_healthy(HANG_S)
        pids = supervisor.pids
        affinity = [tuple(psutil.Process(p).cpu_affinity()) for p in pids]
        answers = [post(r.url + "/v1/completions", json={"prompt": "x"}).status_code
                   for r in supervisor.replicas]
        statuses = [r.status() for r in supervisor.replicas]
    assert len(pids) == n and answers == [200] * n
    assert len(set(affinity)) == n and all(len(a) == 1 for a in affinity)
    assert [s["state"] for s in statuses] == ["healthy"] * n and statuses[0]["cores"] == list(affinity[0])
    assert (tmp_path / "replica-0.log").exists()
    assert wait_gone(pids) == []
    assert all(r.state == "stopped" and r.pid is None for r in supervisor.replicas)


def test_a_replica_that_exits_is_restarted():
    plan = ServeConfig(replicas=1, engine_cmd=fake_cmd("--crash-on-request"), **FAST)
    with Supervisor(plan) as supervisor:
        replica = supervisor.replicas[0]
        supervisor.wait_healthy(HANG_S)
        first = replica.pid
        with pytest.raises(httpx.HTTPError):  # it exits with status 3 instead of answering
            post(replica.url + "/v1/completions", json={"prompt": "x"})
        _wait(lambda: replica.restarts >= 1 and replica.healthy)
        assert replica.pid != first
        assert "exited with status 3" in replica.last_error
    assert wait_gone([first]) == []


def test_an_exit_quotes_only_what_this_run_of_the_replica_wrote(tmp_path):
    (tmp_path / "replica-0.log").write_text("Traceback (most recent call last):\nOldError: an earlier serve\n")
    plan = ServeConfig(replicas=1, engine_cmd=fake_cmd("--crash-after", "0.5"), **FAST)
    with Supervisor(plan, log_dir=tmp_path) as supervisor:
        replica = supervisor.replicas[0]
        _wait(lambda: replica.restarts >= 1)
        assert replica.last_error.startswith("exited with status 3") and "OldError" not in replica.last_error
    assert "OldError" in (tmp_path / "replica-0.log").read_text()  # the log itself keeps every run


def test_a_replica_killed_by_sigkill_is_reported_by_the_signal_alone(tmp_path):
    plan = ServeConfig(replicas=1, engine_cmd=fake_cmd("--say", "engine-started"), **FAST)
    with Supervisor(plan, log_dir=tmp_path) as supervisor:
        replica = supervisor.replicas[0]
        supervisor.wait_healthy(HANG_S)
        victim = replica.pid
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: replica.restarts >= 1)
        assert replica.last_error == "killed by SIGKILL"  # not "engine-started", the line it wrote long before
    assert wait_gone([victim]) == []


def test_a_replica_log_holds_what_the_engine_wrote_and_no_warning(tmp_path):
    with Supervisor(ServeConfig(replicas=1, engine_cmd=fake_cmd("--say", "engine-started"), **FAST),
                    log_dir=tmp_path) as supervisor:
        supervisor.wait_healthy(HANG_S)
    assert (tmp_path / "replica-0.log").read_text() == "engine-started\n"  # no runpy RuntimeWarning before it


def test_a_replica_that_never_becomes_healthy_is_reported_and_restarted():
    plan = ServeConfig(replicas=1, engine_cmd=fake_cmd("--never-healthy"), health_timeout_s=0.5, **FAST)
    with Supervisor(plan) as supervisor:
        replica = supervisor.replicas[0]
        _wait(lambda: replica.restarts >= 1)
        assert not replica.healthy and "not healthy 0.5 s after its start" in replica.last_error
        with pytest.raises(LaunchError, match="replica 0"):
            supervisor.wait_healthy(0.2)


def test_too_many_cores_are_refused_before_anything_starts():
    cores = len(os.sched_getaffinity(0))
    supervisor = Supervisor(ServeConfig(replicas=cores + 1, engine_cmd=fake_cmd(), **FAST))
    with pytest.raises(PlanError, match=f"needs {cores + 1} cores"):
        supervisor.start()
    assert supervisor.replicas == []


def _fake_mps(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-cuda-mps-control"
    script.write_text('#!/bin/sh\nif [ "$1" = "-d" ]; then echo "start $CUDA_MPS_PIPE_DIRECTORY" >> "$FAKE_MPS_LOG";'
                      ' exit 0; fi\nread cmd\necho "$cmd $CUDA_MPS_PIPE_DIRECTORY" >> "$FAKE_MPS_LOG"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MPS_LOG", str(tmp_path / "mps.log"))
    return tmp_path / "mps.log"


def test_mps_runs_while_the_replicas_run(tmp_path, monkeypatch):
    log = _fake_mps(tmp_path, monkeypatch)
    plan = ServeConfig(replicas=1, engine_cmd=fake_cmd(), mps=True, **FAST)
    with Supervisor(plan) as supervisor:
        supervisor.wait_healthy(HANG_S)
        replica_env = psutil.Process(supervisor.pids[0]).environ()
        assert log.read_text().split()[0] == "start"
    lines = log.read_text().splitlines()
    pipe = lines[0].split()[1]
    assert lines == [f"start {pipe}", f"quit {pipe}"]
    assert replica_env["CUDA_MPS_PIPE_DIRECTORY"] == pipe


def test_mps_without_its_control_program_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlanError, match="--mps needs nvidia-cuda-mps-control on PATH"):
        Supervisor(ServeConfig(replicas=1, engine_cmd=fake_cmd(), mps=True, **FAST)).start()


def _wait(condition) -> None:
    wait_until(condition, "the replica's state")
