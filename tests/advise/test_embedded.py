"""The advisor on a real sweep of the embedded engine (tests/data/embedded-sweep: Gemma 3 270M on 2 CPU cores,
`paretoserve sweep --max-batch 1,2,4,8 --threads-per-replica 1 --input-tokens 16 --output-tokens 16 --requests 8`)."""

import json
import shutil
from pathlib import Path

import pytest

from paretoserve.advise import AdviseConfig, advise

SWEEP = Path(__file__).parents[1] / "data" / "embedded-sweep"


def test_embedded_sweep_advice_by_hand():
    advice = advise(SWEEP, AdviseConfig(slo="tpot_ms<=150"))
    assert advice.b_opt == 4  # mean TPOT 135 ms at B=4, 168 ms at B=8
    assert [r.batch for r in advice.rejected] == [8]
    m = advice.memory
    assert m.device_memory_bytes == 25_276_063_744  # the machine's RAM, from sweep.json
    assert m.kv_bytes_per_token == 18 * 1024  # Gemma 3 270M: 18 layers x 1 KV head x (256 + 256) x 2 bytes
    b4 = next(p for p in advice.batches if p.batch == 4)
    assert m.kv_need_bytes == pytest.approx(0.1142578125 * 1024 * 18 * 1024)  # peak share x 1024-token budget
    assert m.default_kv_bytes == 64 * 2048 * 18 * 1024  # the engine's defaults
    assert m.freed_bytes == pytest.approx(m.default_kv_bytes - m.kv_need_bytes)
    assert m.weights_bytes == 253_113_024  # the GGUF file
    plan = advice.replica_plan
    # one thread per engine on 2 cores: two replicas of B=4, predicted as twice what one engine measured
    assert (plan.replicas, plan.max_batch, plan.predicted_or_measured, plan.replicas_fit_cores) == \
        (2, 4, "predicted", 2)
    assert plan.expected_throughput == pytest.approx(2 * b4.throughput)
    assert advice.commands.engine.startswith("paretoserve engine --model default --max-batch 4 --kv-tokens 132")
    energy = next(f for f in advice.pareto if f.name == "energy_per_output_token_vs_throughput")
    assert energy.points and "estimated" in energy.note


@pytest.mark.parametrize("features, no_repack", [(["avx2", "avx512f", "amx_int8", "amx_tile"], True),
                                                 (["avx2", "avx512f"], False), (["avx2"], False)])
def test_llama_server_line_turns_repacking_off_where_the_sweep_ran_on_amx(tmp_path, features, no_repack):
    shutil.copytree(SWEEP, tmp_path / "sweep")
    stored = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    stored["environment"]["cpu_features"] = features
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(stored))
    line = advise(tmp_path / "sweep", AdviseConfig(slo="tpot_ms<=150")).commands.llama_server
    assert line.startswith("llama-server -m MODEL.gguf -np 4") and ("--no-repack" in line) is no_repack


@pytest.mark.parametrize("engine, flag", [(None, ""), ("llama-server", "--engine llama-server ")])
def test_the_serve_line_runs_the_engine_the_sweep_measured(tmp_path, engine, flag):
    shutil.copytree(SWEEP, tmp_path / "sweep")
    stored = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    if engine:
        stored["spec"]["engine"] = engine  # a sweep recorded before presets has no engine: the embedded one
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(stored))
    advice = advise(tmp_path / "sweep", AdviseConfig(slo="tpot_ms<=150"))
    assert advice.commands.serve.startswith(f"paretoserve serve --plan advice.json {flag}--model default --replicas 2")
    assert advice.memory.weights_bytes == 253_113_024  # llama-server loads the same GGUF


def test_a_vllm_sweep_on_a_cpu_gets_its_kv_bytes_in_vllms_blocks(tmp_path):
    shutil.copytree(SWEEP, tmp_path / "sweep")
    stored = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    stored["spec"]["engine"] = "vllm"
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(stored))
    advice = advise(tmp_path / "sweep", AdviseConfig(slo="tpot_ms<=150"))
    # B_opt = 4 sequences of at most 128 tokens: two 128-token blocks each (one more for a sliding-window layer)
    assert advice.commands.vllm_kv_bytes.endswith(f"--max-num-seqs 4 --kv-cache-memory-bytes {4 * 2 * 128 * 18 * 1024}")
    assert "--engine vllm" in advice.commands.serve
