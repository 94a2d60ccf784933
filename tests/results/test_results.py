"""The sweep directory read through results/: which points finished, and a point's figures by name."""

from __future__ import annotations

import pytest

from paretoserve.results.point import DERIVED_ENERGY_SOURCE, to_point
from paretoserve.results.store import POINTS_FILE, SPEC_FILE, NoFinishedPoint, SweepStore
from paretoserve.results.sweep import read_sweep

CONFIG = {"max_batch": 4, "kv_tokens": None, "threads": 2, "replicas": 1}


def test_a_point_finished_only_with_status_ok_and_its_batch_cap(tmp_path):
    store = SweepStore(tmp_path)
    store.open({}, {}, resume=False)
    assert (tmp_path / SPEC_FILE).is_file()
    store.append({"key": "ok", "config": CONFIG, "status": "ok"})
    store.append({"key": "no-cap", "config": {}, "status": "ok"})
    store.append({"key": "failed", "config": CONFIG, "status": "failed", "reason": "exit 1"})
    assert (tmp_path / POINTS_FILE).is_file()
    assert set(store.finished()) == {"ok"}
    sweep = read_sweep(tmp_path)
    assert [r["key"] for r in sweep.records] == ["ok"]
    assert sorted(r["key"] for r in sweep.failed) == ["failed", "no-cap"]  # every point that did not finish


def test_a_sweep_without_a_finished_point_says_so(tmp_path):
    store = SweepStore(tmp_path)
    store.open({}, {}, resume=False)
    store.append({"key": "failed", "config": CONFIG, "status": "failed"})
    with pytest.raises(NoFinishedPoint, match="has no finished point yet"):
        read_sweep(tmp_path)


def test_figures_by_their_points_jsonl_names():
    point = to_point({"key": "b4", "config": CONFIG, "status": "ok", "output_throughput": 100.0,
                      "mean_tpot_ms": 40.0, "p99_itl_ms": 55.0, "kv_peak_fraction": 0.5,
                      "energy_per_output_token_j": 0.2, "energy_source": "rapl", "energy_note": "RAPL package"})
    assert point.figure("output_throughput") == 100.0 and point.figure("mean_tpot_ms") == 40.0
    assert point.figure("p99_itl_ms") == 55.0 and point.figure("median_ttft_ms") is None
    assert point.figure("kv_peak_fraction") == 0.5 and point.figure("energy_per_output_token_j") == 0.2
    assert point.figure("key") is None and point.figure("no_such_field") is None
    assert (point.energy_source, point.energy_note) == ("rapl", "RAPL package")


def test_energy_as_recorded_or_derived_for_vllm_imports():
    derived = to_point({"key": "v", "config": CONFIG, "mean_power_w": 300.0, "duration": 10.0,
                        "total_output_tokens": 1000})
    assert derived.energy_per_output_token_j == 3.0 and derived.energy_source == DERIVED_ENERGY_SOURCE
    none = to_point({"key": "n", "config": CONFIG, "energy_per_output_token_j": None, "energy_source": "none"})
    assert none.energy_per_output_token_j is None and none.energy_source == "none"
