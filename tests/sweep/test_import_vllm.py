"""`paretoserve import vllm` on a subset of the "Mind the Memory Gap" measurements (tests/data)."""

import json
import shutil
from pathlib import Path

import pytest

from paretoserve.cli import main
from paretoserve.results.store import SweepStore
from paretoserve.sweep.import_vllm import VllmImportError, import_runs, kv_bytes_per_token

DATA = Path(__file__).parents[1] / "data"
MMG = DATA / "mind-the-memory-gap"
RUNS = MMG / "advisor" / "output_length" / "_390" / "opt-1.3b"
OPT_13B_CONFIG = DATA / "model-configs" / "opt-1.3b.json"
OPT_13B_KV = 2 * 24 * 32 * 64 * 2  # K and V x layers x heads x head dim x fp16 = 196,608 bytes per token

# Geometry of the paper's other models, from their public Hugging Face config.json files.
LLAMA_2_7B = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
              "num_key_value_heads": 32, "torch_dtype": "float16"}
LLAMA_2_13B = {"num_hidden_layers": 40, "hidden_size": 5120, "num_attention_heads": 40,
               "num_key_value_heads": 40, "torch_dtype": "float16"}
OPT_2_7B = {"num_hidden_layers": 32, "hidden_size": 2560, "num_attention_heads": 32, "torch_dtype": "float16"}


def test_kv_bytes_per_token_from_model_geometry():
    assert kv_bytes_per_token(json.loads(OPT_13B_CONFIG.read_text())) == OPT_13B_KV == 196_608
    assert kv_bytes_per_token(OPT_2_7B) == 2 * 32 * 32 * 80 * 2 == 327_680
    assert kv_bytes_per_token(LLAMA_2_7B) == 524_288  # 0.5 MiB per token
    assert kv_bytes_per_token(LLAMA_2_13B) == 819_200
    gqa = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "head_dim": 128, "torch_dtype": "bfloat16"}
    assert kv_bytes_per_token(gqa) == 2 * 32 * 8 * 128 * 2
    assert kv_bytes_per_token({**gqa, "torch_dtype": "float32"}) == 2 * 32 * 8 * 128 * 4
    assert kv_bytes_per_token({"text_config": gqa}) == 2 * 32 * 8 * 128 * 2
    with pytest.raises(VllmImportError, match="num_hidden_layers"):
        kv_bytes_per_token({"hidden_size": 8})


def test_import_reads_caps_throughput_and_kv_by_hand():
    folders = [RUNS / f"_{b}__2000" for b in (32, 64, 128, 256)]
    records = {r["config"]["max_batch"]: r for r in import_runs(folders, model_config=json.loads(
        OPT_13B_CONFIG.read_text()))}
    assert sorted(records) == [32, 64, 128, 256]
    r = records[128]
    assert r["max_batch_source"].endswith("config-32856.txt")  # the launch record's --max-num-seqs list
    assert r["config"] == {"max_batch": 128, "kv_tokens": 18526 * 16, "threads": 0, "replicas": 1}
    assert r["key"] == "b128-kv296416-t0-r1" and r["status"] == "ok"
    assert r["duration"] == pytest.approx(99.00184808298945)
    assert r["completed"] == 2000
    assert r["request_throughput"] == pytest.approx(2000 / 99.00184808298945)  # 20.20 req/s
    assert r["output_throughput"] == pytest.approx(7878.6408042217145)
    assert r["mean_tpot_ms"] == pytest.approx(15.702042131790064)
    assert r["p99_itl_ms"] == pytest.approx(26.488992299418896)
    # metrics_engine.csv, samples before the run's duration ended (the paper's rule)
    assert r["max_running"] == 128 and r["preemptions"] == 0
    assert r["kv_peak_fraction"] == pytest.approx(0.25720608874014894)  # README: opt-1.3b KV need at B_opt 128
    assert r["kv_budget_bytes"] == 18526 * 16 * OPT_13B_KV == 58_277_756_928
    assert r["kv_peak_bytes"] == int(0.25720608874014894 * 58_277_756_928)
    assert 0 < r["mean_running"] <= 128
    assert 100 < r["mean_power_w"] < 700  # nvidia-smi dmon pwr column, W
    assert r["source"].endswith("_128__2000")
    assert [records[b]["max_running"] for b in (32, 64, 256)] == [32, 64, 256]
    assert records[32]["request_throughput"] < records[256]["request_throughput"]


def test_cap_falls_back_to_max_running_without_launch_record(tmp_path):
    run = tmp_path / "run-a"
    shutil.copytree(RUNS / "_64__2000", run)
    (r,) = import_runs([run], kv_per_token=1000)
    assert r["config"]["max_batch"] == 64 and r["max_batch_source"] == "max num_requests_running"
    assert r["kv_budget_bytes"] == 18552 * 16 * 1000
    # a bare result JSON: no metric CSVs, no cache_config, no launch record -> the client's concurrency limit
    # where the run had one (said in the record), else no batch cap to be had
    bare = tmp_path / "bare"
    bare.mkdir()
    result = json.loads(next(run.glob("openai-*.json")).read_text())
    (bare / "result.json").write_text(json.dumps({**result, "max_concurrency": 16}))
    (r,) = import_runs([bare / "result.json"])
    assert r["config"]["max_batch"] == 16 and "--max-concurrency" in r["max_batch_source"]
    (bare / "result.json").write_text(json.dumps({**result, "max_concurrency": None}))
    with pytest.raises(VllmImportError, match="batch cap"):
        import_runs([bare / "result.json"])


def test_cli_writes_a_sweep_directory_that_reads_back(tmp_path, capsys):
    out = tmp_path / "imported"
    assert main(["import", "vllm", str(RUNS / "_32__2000"), str(RUNS / "_256__2000"), "--out", str(out),
                 "--model-config", str(OPT_13B_CONFIG)]) == 0
    assert "2 points" in capsys.readouterr().out
    store = SweepStore(out)
    spec = store.read_spec()
    assert spec["spec"]["imported_from"] == "vllm" and spec["spec"]["kv_bytes_per_token"] == OPT_13B_KV
    assert len(spec["spec"]["paths"]) == 2
    assert spec["environment"]["gpus"][0]["name"] == "unknown"
    records = store.records()
    assert [r["config"]["max_batch"] for r in records] == [32, 256]
    assert records[0]["kv_budget_bytes"] == 18578 * 16 * OPT_13B_KV
    assert (out / "points.csv").read_text().startswith("config.max_batch,config.kv_tokens")
    # what the sweep store expects of a directory: --resume would find both points finished
    assert store.open(spec["spec"], spec["environment"], resume=True) == {r["key"] for r in records}


def test_cli_gpu_flags_fill_the_environment(tmp_path):
    out = tmp_path / "o"
    assert main(["import", "vllm", str(RUNS / "_64__2000"), "--out", str(out), "--kv-bytes-per-token", "2",
                 "--gpu-name", "H100 64GB", "--gpu-memory-gb", "64"]) == 0
    gpu = SweepStore(out).read_spec()["environment"]["gpus"][0]
    assert gpu == {"index": 0, "name": "H100 64GB", "memory_total_bytes": 64_000_000_000}


@pytest.mark.parametrize("argv, needle", [
    (["--out", "{tmp}/a"], "--model-config config.json or --kv-bytes-per-token"),
    (["--out", "{tmp}/b", "--kv-bytes-per-token", "0"], "--kv-bytes-per-token"),
    (["--out", "{tmp}/c", "--model-config", "{tmp}/missing.json"], "--model-config"),
])
def test_cli_mistakes_are_one_line(tmp_path, capsys, argv, needle):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["import", "vllm", str(RUNS / "_64__2000"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_bad_paths_name_the_file(tmp_path, capsys):
    assert main(["import", "vllm", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: no such file" in capsys.readouterr().err
    not_bench = tmp_path / "x.json"
    not_bench.write_text('{"hello": 1}')
    assert main(["import", "vllm", str(not_bench), "--out", str(tmp_path / "o")]) == 2
    assert "x.json: not a vLLM bench serve result" in capsys.readouterr().err
    assert main(["import", "vllm", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "holds no vLLM bench serve result" in capsys.readouterr().err
    # an existing sweep directory is not overwritten
    out = tmp_path / "done"
    assert main(["import", "vllm", str(RUNS / "_64__2000"), "--out", str(out), "--kv-bytes-per-token", "2"]) == 0
    assert main(["import", "vllm", str(RUNS / "_64__2000"), "--out", str(out), "--kv-bytes-per-token", "2"]) == 2
    assert "--out" in capsys.readouterr().err


def test_launch_record_forms_and_replicas(tmp_path):
    # a plain command line in the run folder itself gives the cap, whatever the folder is called
    run = tmp_path / "_7__x"
    shutil.copytree(RUNS / "_64__2000", run)
    (run / "config-1.txt").write_text("vllm serve facebook/opt-1.3b --max-num-seqs 64 --port 8000\n")
    (r,) = import_runs([run], kv_per_token=1)
    assert r["config"]["max_batch"] == 64 and r["max_batch_source"].endswith("config-1.txt")
    # a record above that lists other caps than the folder's number does not count: fall back to the gauges
    (run / "config-1.txt").unlink()
    (tmp_path / "config-2.txt").write_text("--test-server-args \"{'--max-num-seqs':['768']}\"")
    (r,) = import_runs([run], kv_per_token=1)
    assert r["max_batch_source"] == "max num_requests_running" and r["config"]["max_batch"] == 64
    # two engines side by side (one cache_config and metrics_engine CSV each): caps and KV budgets add up
    for name in ("cache_config", "metrics_engine"):
        ext = ".txt" if name == "cache_config" else ".csv"
        (run / f"{name}{ext}").rename(run / f"{name}_server_0{ext}")
        shutil.copy(run / f"{name}_server_0{ext}", run / f"{name}_server_1{ext}")
    (r,) = import_runs([run], kv_per_token=1)
    assert r["config"] == {"max_batch": 64, "kv_tokens": 18552 * 16, "threads": 0, "replicas": 2}
    assert r["max_running"] == 128 and r["kv_budget_bytes"] == 2 * 18552 * 16
