"""--repack on the bundled model: the engine serves with the extra buffers off, and `no-amx` places the
weights exactly as llama.cpp does where there is no AMX to drop."""

from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.llama_load import resolve_repack
from paretoserve.engine.llama_runner import LlamaRunner
from paretoserve.engine.scheduler import StepItem
from paretoserve.model import resolve_model
from tests.waiting import HANG_S

pytestmark = pytest.mark.integration


def first_logits(repack: str) -> np.ndarray:
    spec = resolve_model("default")
    runner = LlamaRunner(EngineConfig(spec.path, spec.name, max_batch=2, ctx_per_seq=64, threads=1, repack=repack))
    try:
        ids = runner.tokenize("The capital of France is")
        return np.array(runner.decode([StepItem(seq=SimpleNamespace(slot=0), tokens=ids, pos=0, wants_logits=True)]))
    finally:
        runner.close()


def test_engine_serves_with_the_extra_buffers_off(start_engine):
    url = start_engine("--max-batch", "2", "--ctx-per-seq", "64", "--threads", "1", "--repack", "off")
    body = {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    response = httpx.post(url + "/v1/completions", json=body, timeout=HANG_S)
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 4


def test_no_amx_matches_llamas_own_placement_where_there_is_no_amx():
    if resolve_repack("auto").mode != "all":
        pytest.skip("this llama.cpp build would use AMX: `all` cannot run here")
    all_bufs, no_amx, off = first_logits("all"), first_logits("no-amx"), first_logits("off")
    assert np.array_equal(all_bufs, no_amx)  # the same weights repacked by the same kernels: bit-identical
    assert all_bufs.argmax() == off.argmax()  # unrepacked kernels round differently but agree on the token
