"""How an engine's end is reported: a signal by its name, a crash with the flag to try and its last log lines."""

import sys

import pytest

from paretoserve.engine_process import (
    EngineProcess,
    LaunchError,
    describe_exit,
    embedded_engine_cmd,
    ended_itself,
    free_port,
)
from tests.waiting import HANG_S


def test_exit_status_and_signals_in_words():
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(-11).startswith("killed by SIGSEGV: ")


def test_an_exit_or_a_crash_is_the_process_own_end_a_sent_signal_is_not():
    assert ended_itself(0) and ended_itself(3) and ended_itself(-11) and ended_itself(-6)
    assert not ended_itself(-9) and not ended_itself(-15) and not ended_itself(-2) and not ended_itself(-250)


def test_a_crash_names_the_flag_for_the_engine_it_was():
    engine = describe_exit(-11, embedded_engine_cmd(8000))
    assert engine.startswith("killed by SIGSEGV: a crash inside llama.cpp") and "--repack off" in engine
    server = describe_exit(-11, ["/opt/bin/llama-server", "-m", "m.gguf"])
    assert "--no-repack" in server and "--repack off" not in server
    assert "--repack" not in describe_exit(-6, ["vllm", "serve"])


def test_an_engine_that_segfaults_before_health_is_reported_by_signal_with_its_log(tmp_path):
    crash = "print('loading the model', flush=True); import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    with EngineProcess([sys.executable, "-c", crash], f"http://127.0.0.1:{free_port()}") as proc, \
            pytest.raises(LaunchError) as err:
        proc.wait_healthy(HANG_S)
    message = str(err.value)
    assert "killed by SIGSEGV" in message and "status -11" not in message and "loading the model" in message
