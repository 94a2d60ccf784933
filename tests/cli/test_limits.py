"""The CLI refuses what cannot work with one line naming the flag and its range (exit 2), before any engine
starts; a signal ends a long command with 128 + its number."""

from __future__ import annotations

import os
import signal
import socket
from types import SimpleNamespace

import pytest

from paretoserve.cli import main
from paretoserve.engine.config import EngineConfig
from paretoserve.serve.config import PlanError, ServeConfig
from tests.serve.helpers import fake_cmd


def no_engine(*args, **kwargs):
    raise AssertionError("an engine was started")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_tune_refuses_more_threads_than_cores(tmp_path, capsys, cores, monkeypatch):
    cores(2)
    monkeypatch.setattr("paretoserve.cli.tune_cmd.run_tune", no_engine)
    assert main(["tune", "--out", str(tmp_path / "t"), "--threads", "99"]) == 2
    assert "--threads must be an integer in [0, 2]" in one_line_error(capsys)


def test_sweep_refuses_more_threads_per_replica_than_cores(tmp_path, capsys, cores, sweep_without_engines):
    cores(2)
    assert main(["sweep", "--out", str(tmp_path / "s"), "--threads-per-replica", "1,99"]) == 2
    assert "--threads-per-replica must be a comma-separated list of integers in [0, 2]" in one_line_error(capsys)
    assert not (tmp_path / "s").exists()


def test_the_thread_limit_follows_the_cores_found(cores):
    cores(4)
    assert ServeConfig(threads_per_replica=3).threads_per_replica == 3
    cores(2)
    with pytest.raises(PlanError, match=r"--threads-per-replica must be an integer in \[0, 2\]"):
        ServeConfig(threads_per_replica=3)


@pytest.mark.parametrize("flags, message", [
    (["--max-batch", "5000"], "--max-batch must be an integer in [1, 4096]"),  # serve alone allowed 65,536
    (["--max-batch", "64", "--kv-tokens", "512"], "--kv-tokens 512 leaves each sequence 8 tokens"),
    (["--ctx-per-seq", "8"], "--ctx-per-seq must be an integer in [16, "),
])
def test_serve_checks_the_embedded_engine_limits_before_any_replica(capsys, monkeypatch, flags, message):
    monkeypatch.setattr("paretoserve.cli.serve_cmd.serve", no_engine)
    monkeypatch.setattr("paretoserve.presets.knobs.resolve_model", no_engine)  # refused before the model is built
    assert main(["serve", *flags]) == 2
    assert message in one_line_error(capsys)


def test_every_batch_cap_the_engine_allows_runs_with_its_default_step():
    assert EngineConfig(model_path="m", model_name="m", max_batch=4096, ctx_per_seq=16).max_step_tokens == 4096
    assert EngineConfig(model_path="m", model_name="m", max_batch=8).max_step_tokens == 512
    assert ServeConfig(max_batch=1000, ctx_per_seq=64).max_batch == 1000
    assert ServeConfig(max_batch=5000, engine_cmd=fake_cmd()).max_batch == 5000  # another engine: serve's range


@pytest.fixture
def sweep_without_engines(monkeypatch):
    """Runs `sweep` up to its points, which are recorded here instead of run."""
    specs = []
    monkeypatch.setattr("paretoserve.presets.knobs.resolve_model", lambda model, cache=None: SimpleNamespace(path="m"))
    monkeypatch.setattr("paretoserve.sweep.session.run_points", lambda spec, *a, **k: specs.append(spec) or [])
    return specs


def test_sweep_derives_a_context_the_engine_accepts(tmp_path, sweep_without_engines):
    assert main(["sweep", "--out", str(tmp_path / "s"), "--input-tokens", "4", "--output-tokens", "2"]) == 0
    assert sweep_without_engines[0].ctx_per_seq == 16  # 4 + 1 + 2 = 7 is below the engine's smallest context


@pytest.mark.parametrize("flags, message", [
    (["--ctx-per-seq", "7", "--input-tokens", "4", "--output-tokens", "2"],
     "--ctx-per-seq must be an integer in [16, "),
    (["--ctx-per-seq", "100"], "--ctx-per-seq 100 is too short for the workload: --input-tokens 128 + 1 (BOS) + "
                               "--output-tokens 128 need 257"),
    (["--max-batch", "1,,2"], "--max-batch must be a comma-separated list of integers in [1, 4096]; got '1,,2'"),
    (["--max-batch", "1,2,"], "--max-batch must be a comma-separated list"),
    (["--max-batch", "5000"], "--max-batch must be a comma-separated list of integers in [1, 4096]"),
])
def test_sweep_refuses_points_that_cannot_run(tmp_path, capsys, sweep_without_engines, flags, message):
    assert main(["sweep", "--out", str(tmp_path / "s"), *flags]) == 2
    assert message in one_line_error(capsys)
    assert sweep_without_engines == [] and not (tmp_path / "s").exists()


def test_resume_names_each_flag_that_differs_with_both_values(tmp_path, capsys, sweep_without_engines):
    args = ["sweep", "--out", str(tmp_path / "s"), "--engine-cmd", fake_cmd("--max-batch", "{max_batch}")]
    assert main([*args, "--max-batch", "1,2", "--input-tokens", "16"]) == 0
    capsys.readouterr()
    assert main([*args, "--max-batch", "1,4", "--input-tokens", "32", "--resume"]) == 2
    err = one_line_error(capsys)
    assert "--input-tokens was 16, now 32" in err and "--max-batch was 1,2, now 1,4" in err
    assert "differ" not in err


def test_engine_refuses_a_taken_port_before_the_model_loads(capsys, monkeypatch):
    monkeypatch.setattr("paretoserve.cli.engine_cmd.Engine", no_engine)
    monkeypatch.setattr("paretoserve.cli.engine_cmd.engine_config", no_engine)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["engine", "--port", str(port)]) == 2
    assert f"--port {port} on 127.0.0.1 cannot be used" in one_line_error(capsys)


@pytest.fixture
def restore_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def sigterm_self(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    raise AssertionError("SIGTERM did not interrupt")


def test_sigterm_ends_sweep_with_143(tmp_path, capsys, monkeypatch, restore_sigterm, sweep_without_engines):
    monkeypatch.setattr("paretoserve.sweep.session.run_points", sigterm_self)
    assert main(["sweep", "--out", str(tmp_path / "s"), "--engine-cmd", fake_cmd()]) == 143
    assert "sweep interrupted" in capsys.readouterr().err


def test_sigterm_ends_tune_with_143(tmp_path, capsys, monkeypatch, restore_sigterm):
    monkeypatch.setattr("paretoserve.cli.tune_cmd.run_tune", sigterm_self)
    assert main(["tune", "--out", str(tmp_path / "t")]) == 143
    assert "tune interrupted" in capsys.readouterr().err


def test_ctrl_c_still_ends_with_130(tmp_path, monkeypatch, sweep_without_engines):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("paretoserve.sweep.session.run_points", interrupt)
    assert main(["sweep", "--out", str(tmp_path / "s"), "--engine-cmd", fake_cmd()]) == 130
