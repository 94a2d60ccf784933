"""The engine's async API in-process on the bundled model: requests it must refuse never reach llama_decode."""

import asyncio

import pytest

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.core import Engine
from paretoserve.engine.sampling import SamplingParams
from paretoserve.model import resolve_model
from tests.conftest import HEALTH_TIMEOUT_S

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine():
    spec = resolve_model("default")
    eng = Engine(EngineConfig(model_path=spec.path, model_name=spec.name, max_batch=4, ctx_per_seq=64, threads=1))
    eng.start()
    assert eng.wait_ready(HEALTH_TIMEOUT_S)
    yield eng
    eng.stop()


async def _events(engine: Engine, prompt: list[int], max_tokens: int) -> list:
    return [ev async for ev in engine.generate(prompt, SamplingParams(max_tokens=max_tokens, temperature=0))]


@pytest.mark.parametrize("prompt, max_tokens, reason", [
    ([2, 100] * 10, 0, "max_tokens >= 1"),
    ([], 3, "needs a prompt"),
    ([2, 100] * 30, 8, "exceeds --ctx-per-seq 64"),
])
def test_bad_request_fails_alone_while_a_good_one_runs(engine, prompt, max_tokens, reason):
    async def both():
        return await asyncio.gather(_events(engine, [2, 651, 6037], 12), _events(engine, prompt, max_tokens))

    good, bad = asyncio.run(both())
    assert [(ev.finish_reason, ev.tokens) for ev in bad] == [("error", ())] and reason in bad[0].error
    assert sum(len(ev.tokens) for ev in good) == 12 or good[-1].finish_reason == "stop"
    assert all(ev.error is None for ev in good)
