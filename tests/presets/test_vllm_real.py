"""vLLM on CPU for real (opt-in: PARETOSERVE_TEST_VLLM=1 with the vllm extra installed, see the README).

The bundled GGUF exported to an HF directory continues as llama.cpp does; `--engine vllm` sweeps, advises
and serves it; `paretoserve bench` reads vLLM's own metrics; `vllm bench serve` runs against vLLM and against
our engine, and `paretoserve import vllm` reads its result files. Each vLLM start takes 40-90 s here, so
the whole file takes several minutes; CI leaves it out (README, "vLLM on CPU").
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.engine_process import EngineProcess, free_port
from paretoserve.serve.config import ServeConfig

OPT_IN = "PARETOSERVE_TEST_VLLM"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
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
    assert sum(agree) >= 4 * len(agree), agree  # here: all 8 tokens of all 4 prompts agreed


@pytest.fixture(scope="module")
def vllm_url():
    """One vLLM engine started as `--engine vllm` starts it (the bundled model's export, 8 sequences)."""
    plan = ServeConfig(engine="vllm", model="default", pin=False, **SMALL)
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
    assert [m.id for m in client.models.list().data] == ["gemma-3-270m-q4_k_m"]  # served under the GGUF's name
    text = client.completions.create(model="gemma-3-270m-q4_k_m", prompt="The capital of France is", max_tokens=8,
                                     temperature=0).choices[0].text
    assert "capital" in text or "France" in text or "Paris" in text, text


def vllm_bench(base_url: str, model: str, out: Path) -> dict:
    """`vllm bench serve` (random 32 in / 32 out, 16 prompts, concurrency 4) against `base_url`; its result."""
    from paretoserve.hf_export import export_tokenizer

    argv = [sys.executable, str(BENCHMARKS / "vllm_bench_serve.py"), "--backend", "vllm", "--base-url", base_url,
            "--model", model, "--tokenizer", str(export_tokenizer()), "--dataset-name", "random",
            "--random-input-len", "32", "--random-output-len", "32", "--num-prompts", "16", "--max-concurrency", "4",
            "--ignore-eos", "--save-result", "--result-dir", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = out.glob("*.json")
    return json.loads(result.read_text())


def test_vllm_bench_serve_against_vllm_and_ours_imports_and_reports(vllm_url, engine_url, tmp_path):
    from paretoserve.cli import main
    from paretoserve.hf_export import export_model

    for name, url in (("vllm", vllm_url.base_url), ("ours", engine_url)):
        result = vllm_bench(url, "gemma-3-270m-q4_k_m", tmp_path / name / "c4")
        assert (result["completed"], result["failed"]) == (16, 0) and result["output_throughput"] > 0
        sweep = tmp_path / f"{name}-sweep"
        assert main(["import", "vllm", str(tmp_path / name), "--out", str(sweep),
                     "--model-config", str(export_model() / "config.json")]) == 0
        assert main(["advise", str(sweep), "--json"]) == 0
        assert main(["report", str(sweep), "--out", str(sweep / "report.html")]) == 0
        assert "imported from vLLM bench serve results" in (sweep / "report.html").read_text()


def test_sweep_advise_and_serve_with_engine_vllm(tmp_path, capsys):
    from openai import APIConnectionError, InternalServerError, OpenAI

    from paretoserve.cli import main

    out = tmp_path / "sweep"
    assert main(["sweep", "--engine", "vllm", "--max-batch", "2,8", "--threads-per-replica", "2",
                 "--input-tokens", "32", "--output-tokens", "32", "--requests", "16", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    assert [(r["status"], r.get("failed"), r.get("reason", "")[-300:]) for r in records] == [("ok", 0, "")] * 2
    assert [r["max_running"] for r in records][0] <= 2  # read from vLLM's metrics: the cap held
    capsys.readouterr()
    assert main(["advise", str(out), "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert "--engine vllm" in advice["commands"]["serve"] and "--max-num-seqs" in advice["commands"]["vllm"]
    port = free_port()
    with subprocess.Popen([sys.executable, "-m", "paretoserve", "serve", "--engine", "vllm", "--max-batch", "4",
                           "--ctx-per-seq", "256", "--threads-per-replica", "2", "--port", str(port)]) as serve:
        try:
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
            deadline = time.monotonic() + 300
            while True:
                try:
                    text = client.completions.create(model="gemma-3-270m-q4_k_m", prompt="One, two, three,",
                                                     max_tokens=4, temperature=0).choices[0].text
                    break
                except (APIConnectionError, InternalServerError):  # not serving yet (a 503 while it starts)
                    if time.monotonic() > deadline or serve.poll() is not None:
                        raise
                    time.sleep(2)
            assert text
        finally:
            serve.terminate()
            serve.wait(60)
