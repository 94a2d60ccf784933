"""Capacity runs share points.jsonl with batch points and are never taken for one."""

import pytest

from paretoserve.results.store import NoFinishedPoint, SweepStore, is_capacity, is_finished
from paretoserve.results.sweep import read_sweep

BATCH = {"key": "b8-kvdefault-t2-r1", "status": "ok", "config": {"max_batch": 8, "kv_tokens": None, "threads": 2,
                                                               "replicas": 1}, "output_throughput": 10.0}
RATE = {"key": "rate-2.5", "kind": "capacity", "status": "ok", "config": {"request_rate": 2.5, "max_batch": 8},
        "slo_good": 99, "slo_requests": 100}
FAILED_RATE = {"key": "rate-5", "kind": "capacity", "status": "failed", "config": {"request_rate": 5.0}}


def test_a_capacity_run_is_not_a_finished_batch_point_even_with_a_cap():
    assert is_capacity(RATE) and not is_finished(RATE) and is_finished(BATCH) and not is_capacity(BATCH)


def test_readers_of_a_sweep_see_batch_points_and_capacity_runs_apart(tmp_path):
    store = SweepStore(tmp_path)
    store.open({"max_batch": [8]}, {}, resume=False)
    for record in (BATCH, RATE, FAILED_RATE):
        store.append(record)
    sweep = read_sweep(tmp_path)
    assert [r["key"] for r in sweep.records] == [BATCH["key"]] and sweep.failed == ()
    assert [r["key"] for r in sweep.capacity] == ["rate-2.5"]
    assert list(store.finished()) == [BATCH["key"]]


def test_a_directory_of_capacity_runs_alone_says_what_it_holds(tmp_path):
    store = SweepStore(tmp_path)
    store.open({"kind": "capacity"}, {}, resume=False)
    store.append(RATE)
    with pytest.raises(NoFinishedPoint, match="1 capacity runs .* and no batch point"):
        read_sweep(tmp_path)
