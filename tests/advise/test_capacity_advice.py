"""The capacity advice on capacity directories written here: the knee, the replica and device counts with their
arithmetic, and the traffic read from a trace."""

import json

import pytest

from paretoserve.advise import AdviseError
from paretoserve.advise.capacity import CapacityAdvice, capacity_advice, needed
from paretoserve.advise.traffic import TrafficError, traffic_from_rates, traffic_from_trace
from paretoserve.results.store import CAPACITY_KIND, SweepStore


def capacity_dir(path, rates: dict[float, tuple[int, int]], target: float = 0.99):
    """A `paretoserve capacity` directory holding one run per rate: rate -> (requests within the SLO, sent)."""
    store = SweepStore(path)
    store.open({"kind": CAPACITY_KIND, "url": "http://x", "workload": {"slo": "ttft_ms<=2000"},
                "capacity": {"attainment": target}}, {}, resume=False)
    for rate, (good, total) in rates.items():
        store.append({"key": f"rate-{rate:.4g}", "kind": CAPACITY_KIND, "status": "ok",
                      "config": {"request_rate": rate}, "slo_good": good, "slo_requests": total,
                      "request_throughput": rate, "median_ttft_ms": 100.0, "p99_ttft_ms": 900.0,
                      "mean_e2el_ms": 1500.0})
    return path


def test_the_issues_example_needs_2_replicas_at_the_mean_and_5_at_the_peak(tmp_path):
    directory = capacity_dir(tmp_path / "cap", {1.45: (100, 100), 2.9: (100, 100), 3.2: (90, 100)})
    advice = capacity_advice(directory, replicas=1, max_batch=64, traffic=traffic_from_rates(5.0, 12.0), headroom=0)
    assert (advice.capacity_rps, advice.failing_rps) == (2.9, 3.2)
    assert (advice.replicas_at_mean, advice.replicas_at_peak) == (2, 5)
    assert (advice.devices_at_mean, advice.devices_at_peak) == (2, 5)
    assert advice.summary.startswith("1 x cap 64 sustains 2.9 req/s with 100.0% of requests within the SLO")
    assert "needs 2 replicas of this plan's engine at the mean and 5 at the peak (5 devices" in advice.summary
    assert advice.arithmetic[2] == "peak 12 req/s x (1 + 0 headroom) / 2.9 = 4.14 -> 5 replicas"
    assert [r.rate_rps for r in advice.rates] == [1.45, 2.9, 3.2] and advice.knee.rate_rps == 2.9
    assert advice.slo == "ttft_ms<=2000" and advice.attainment_target == 0.99


def test_several_replicas_per_device_share_the_capacity_and_headroom_adds_replicas(tmp_path):
    directory = capacity_dir(tmp_path / "cap", {4.0: (100, 100), 5.0: (50, 100)})
    advice = capacity_advice(directory, replicas=2, max_batch=32, traffic=traffic_from_rates(5.0), headroom=0.25)
    assert advice.per_replica_rps == 2.0
    assert advice.replicas_at_mean == 4 and advice.devices_at_mean == 2  # 5 x 1.25 / 2 = 3.1 -> 4 on 2 devices
    assert advice.replicas_at_peak is None and advice.devices_at_peak is None


def test_a_rate_that_met_above_a_failing_one_is_not_the_capacity(tmp_path):
    directory = capacity_dir(tmp_path / "cap", {1.0: (100, 100), 2.0: (90, 100), 3.0: (100, 100)})
    advice = capacity_advice(directory, replicas=1, max_batch=8)
    assert (advice.capacity_rps, advice.failing_rps) == (1.0, 2.0)  # 3.0 is noise above the knee


def test_no_rate_met_and_a_batch_sweep_are_refused_naming_the_flag(tmp_path):
    with pytest.raises(AdviseError, match="--capacity-dir: .* none met 99%"):
        capacity_advice(capacity_dir(tmp_path / "cap", {1.0: (50, 100)}), replicas=1, max_batch=8)
    with pytest.raises(AdviseError, match="--capacity-dir: .* is not a directory of `paretoserve capacity` runs"):
        capacity_advice(tmp_path / "nothing", replicas=1, max_batch=8)


def test_needed_rounds_up_and_never_says_zero():
    assert needed(2.0, 1.0, 0.0) == 2 and needed(2.01, 1.0, 0.0) == 3 and needed(0.01, 1.0, 0.1) == 1


def test_a_trace_gives_its_mean_its_busiest_and_quietest_window(tmp_path):
    times = [i * 1.0 for i in range(60)] + [60 + i * 0.25 for i in range(240)] + [120 + i * 2.0 for i in range(31)]
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"timestamp_s": t, "input_length": 8, "output_length": 8}) + "\n"
                             for t in times))
    traffic = traffic_from_trace(trace, window_s=60)
    assert traffic.mean_rps == pytest.approx(330 / 180)
    assert traffic.peak_rps == pytest.approx(4.0) and traffic.low_rps == pytest.approx(31 / 60)
    assert traffic.source == f"trace:{trace}"


@pytest.mark.parametrize(("call", "flag"), [
    (lambda: traffic_from_rates(0.0), "--traffic"), (lambda: traffic_from_rates(5.0, 4.0), "--peak 4"),
    (lambda: traffic_from_rates(5.0, float("inf")), "--peak")])
def test_bad_rates_name_their_flag(call, flag):
    with pytest.raises(TrafficError, match=flag):
        call()


def test_a_bad_trace_and_window_name_their_flag(tmp_path):
    with pytest.raises(TrafficError, match="--traffic trace:"):
        traffic_from_trace(tmp_path / "missing.jsonl")
    with pytest.raises(TrafficError, match="--peak-window"):
        traffic_from_trace(tmp_path / "missing.jsonl", window_s=0)


def test_bounds_are_the_slo_limits_on_one_metric():
    capacity = CapacityAdvice.model_construct(slo="ttft_ms<=2000,tpot_ms<=100,p99_tpot_ms<=150")
    assert capacity.bounds("tpot_ms") == [("tpot_ms<=100", 100.0, True), ("p99_tpot_ms<=150", 150.0, False)]
    assert capacity.bounds("ttft_ms") == [("ttft_ms<=2000", 2000.0, True)]
