"""Calibration on measured sweeps: the paper's OPT-1.3B / OPT-2.7B runs (H100 64 GB, vLLM) and the bundled model
on this 2-core CPU; the target is a median absolute throughput error <= 15 % on batch sizes left out of the fit."""

from __future__ import annotations

import pytest

from paretoserve.estimate.calibrate import CalibrationError, calibrate, load_points
from paretoserve.estimate.hardware import load_hardware
from paretoserve.estimate.roofline import ENGINES, Workload
from paretoserve.geometry import geometry_from_hf_config, load_geometry
from paretoserve.results.store import SweepStore
from paretoserve.results.sweep import read_sweep
from tests.paper_data import DATA, paper_config, paper_sweep

CPU_SWEEP = DATA / "estimate" / "gemma-3-270m-cpu-sweep"  # measured here, see its README.md


@pytest.mark.parametrize("model", ["opt-1.3b", "opt-2.7b"])
def test_calibration_on_the_paper_predicts_left_out_batches(tmp_path, model):
    geometry = geometry_from_hf_config(paper_config(model), model)
    calibrated = calibrate(paper_sweep(model, tmp_path / model), geometry, load_hardware("h100-64gb"),
                           ENGINES["vllm"])
    assert len(calibrated.points) >= 13  # batch caps 1 .. 512 (768 for OPT-1.3B)
    assert calibrated.median_abs_leave_out_error <= 0.15
    assert calibrated.median_abs_fit_error <= calibrated.median_abs_leave_out_error + 1e-9
    big = calibrated.predict(512, Workload(111, 292))
    assert big.bound_by == "attention" and big.label == "predicted"  # the paper's memory-bound plateau


@pytest.mark.integration
@pytest.mark.parametrize("correct_cpu_share", [False, True])
def test_calibration_on_the_bundled_model_on_this_cpu(correct_cpu_share):
    hardware = load_hardware(str(CPU_SWEEP / "hardware.yaml"))
    calibrated = calibrate(CPU_SWEEP, load_geometry("default"), hardware, ENGINES["llama.cpp"], correct_cpu_share)
    assert [p.point.max_batch for p in calibrated.points] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert calibrated.median_abs_leave_out_error <= 0.15
    assert hardware.bandwidth_measured  # so the fit may find it was measured low on a busy machine


def test_mean_running_is_the_batch_that_ran(tmp_path):
    points = load_points(paper_sweep("opt-1.3b", tmp_path / "s"))
    last = points[-1]
    assert last.max_batch == 768 and last.batch < 700  # the batch drains as the 2000 requests run out
    assert last.workload == Workload(111, 292)  # 221,292 prompt and ~584,800 output tokens over 2000 requests


def test_too_few_points_is_a_calibration_error(tmp_path):
    with pytest.raises(CalibrationError, match="no points.jsonl"):
        load_points(tmp_path)
    store = SweepStore(tmp_path)
    store.open({}, {}, resume=False)
    store.append({"key": "b2", "config": {"max_batch": 2}, "status": "failed"})
    with pytest.raises(CalibrationError, match="3 or more batch sizes; found 0 point"):
        load_points(tmp_path)
    store.append({"key": "b1", "config": {"max_batch": 1}, "status": "ok", "completed": 4,
                  "total_input_tokens": 40, "total_output_tokens": 40, "output_throughput": 10.0})
    with pytest.raises(CalibrationError, match="3 or more batch sizes; found 1 point"):
        load_points(tmp_path)


def test_cpu_share_correction_divides_by_the_cores_the_engine_got(tmp_path):
    store = SweepStore(tmp_path)
    store.open({}, {"cpu_cores_usable": 2}, resume=False)
    for cap, threads, busy in ((1, 1, 0.5), (2, 0, 1.0), (4, 1, 1.2), (8, 1, None)):
        store.append({"key": f"b{cap}", "config": {"max_batch": cap, "threads": threads}, "status": "ok",
                      "completed": 8, "total_input_tokens": 256, "total_output_tokens": 512,
                      "output_throughput": 40.0, "engine_cpu_cores": busy})
    raw = load_points(read_sweep(tmp_path))  # a sweep already read, as advise and sweep's guess hand it over
    assert [p.output_throughput for p in raw] == [40.0] * 4
    corrected = load_points(tmp_path, correct_cpu_share=True)
    assert [p.cpu_share for p in corrected] == [0.5, 0.5, 1.0, None]  # threads 0 = both usable cores
    assert [p.output_throughput for p in corrected] == [80.0, 80.0, 40.0, 40.0]
    assert all(p.measured_output_throughput == 40.0 for p in corrected)
