"""`paretoserve estimate` end to end in-process: JSON output, calibration, hardware list, errors naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretoserve.cli import main
from paretoserve.estimate import cpu_probe
from tests.paper_data import paper_sweep

OPT13 = str(Path(__file__).parents[1] / "data" / "model-configs" / "opt-1.3b.json")


@pytest.fixture(autouse=True)
def no_bandwidth_measurement(monkeypatch, tmp_path):
    """`--hardware cpu` measures nothing in tests: a fixed bandwidth, cached in a temporary directory."""
    monkeypatch.setattr(cpu_probe, "measure_read_bandwidth", lambda *args: 31e9)
    monkeypatch.setenv("PARETOSERVE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("flags, message", [
    (["--hardware", "tpu-v9"], "--hardware: unknown hardware 'tpu-v9'; known: cpu, h100, h100-64gb, h200"),
    (["--max-batch", "1,x"], "--max-batch must be a comma-separated list of integers"),
    (["--max-batch", "0,4"], "--max-batch must be a comma-separated list of integers in [1, "),
    (["--input-tokens", "0"], "--input-tokens must be >= 1"),
    (["--dtype", "fp7"], "--dtype: unknown dtype 'fp7'; known: "),
    (["--kv-dtype", "q9"], "--kv-dtype: unknown dtype 'q9'"),
    (["--memory-fraction", "1.5"], "--memory-fraction must be in (0, 1]"),
    (["--model", "/nonexistent/model.gguf"], "--model: no such file"),
    (["--calibrate", "/nonexistent/sweep"], "--calibrate /nonexistent/sweep: no points.jsonl"),
])
def test_bad_flags_name_the_flag(capsys, flags, message):
    assert main(["estimate", "--model", OPT13, "--hardware", "h100", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_yaml_field_names_the_field(tmp_path, capsys):
    spec = tmp_path / "gpu.yaml"
    spec.write_text("memory_gb: 24\nbandwidth_gb_s: 300\npeak_tflop: 121\n")
    assert main(["estimate", "--model", OPT13, "--hardware", str(spec)]) == 2
    assert "unknown field 'peak_tflop'; allowed: memory_gb, bandwidth_gb_s, peak_tflops" in capsys.readouterr().err


def test_json_estimate_of_opt_on_the_papers_gpu(capsys):
    assert main(["estimate", "--model", OPT13, "--hardware", "h100-64gb", "--max-batch", "1,64,1024",
                 "--input-tokens", "111", "--output-tokens", "292", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["label"] == "predicted" and data["engine"]["name"] == "vllm"
    assert [p["batch"] for p in data["points"]] == [1, 64, 1024]
    assert data["points"][-1]["bound_by"] == "attention" and not data["points"][-1]["fits_memory"]
    assert 0 < data["max_batch_fitting"] < 1024
    assert any("attention over the KV cache" in line for line in data["explanation"])


@pytest.mark.integration
def test_tables_of_the_bundled_model_on_this_cpu(capsys):
    assert main(["estimate", "--max-batch", "1,8,64", "--input-tokens", "32", "--output-tokens", "64"]) == 0
    out = capsys.readouterr().out
    assert "decode roofline (predicted)" in out and "LM head" in out and "engine llama.cpp" in out


@pytest.mark.integration
def test_calibrate_reports_errors_per_point(tmp_path, capsys):
    sweep = paper_sweep("opt-1.3b", tmp_path / "opt")
    out = tmp_path / "estimate.json"
    assert main(["estimate", "--model", OPT13, "--hardware", "h100-64gb", "--calibrate", str(sweep),
                 "--max-batch", "96", "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "on batch sizes left out of the fit" in printed
    data = json.loads(out.read_text())
    calibration = data["calibration"]
    assert len(calibration["points"]) == 15 and calibration["median_abs_leave_out_error"] <= 0.15
    assert data["efficiency"]["source"].startswith("calibrated on")
    assert data["workload"] == {"input_tokens": 111, "output_tokens": 292}  # the sweep's own request shape


def test_hardware_list(capsys):
    assert main(["estimate", "--hardware", "list", "--json"]) == 0
    names = [h["name"] for h in json.loads(capsys.readouterr().out)["hardware"]]
    assert names[0] == "cpu" and "l40s" in names
