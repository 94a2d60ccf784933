"""The capacity search replayed on synthetic rate sweeps: each rate it asks for is looked up on a curve of
attainment against rate instead of measured."""

import pytest

from paretoserve.results.rate_run import RateRun, rate_key, to_rate_run, wilson
from paretoserve.sweep.asked import drive
from paretoserve.sweep.rate_search import CapacityError, RateSearchConfig, capacity_search

REQUESTS = 200  # per run


def knee_curve(capacity: float):
    """Every request within the SLO up to `capacity` req/s, then a share falling by 20 % per 10 % of overload."""
    def attainment(rate: float) -> float:
        return 1.0 if rate <= capacity else max(0.0, 1.0 - 2.0 * (rate / capacity - 1.0))
    return attainment


def replay(curve, config: RateSearchConfig, requests: int = REQUESTS):
    asked = []

    def measure(rate: float, extra: int) -> RateRun:
        asked.append((rate, extra))
        total = requests * (extra + 1)
        return RateRun(key=rate_key(rate), rate_rps=rate, good=round(curve(rate) * total), total=total)
    return drive(capacity_search(config), measure), asked


@pytest.mark.parametrize("start", [0.3, 1.0, 2.9, 7.0, 40.0])
def test_finds_the_knee_within_the_resolution_from_any_first_guess(start):
    result, asked = replay(knee_curve(3.0), RateSearchConfig(start_rps=start, remeasure_budget=0))
    assert result.capacity_rps is not None and result.failing_rps is not None
    assert 3.0 / 1.05 <= result.capacity_rps <= 3.0 < result.failing_rps <= result.capacity_rps * 1.05
    assert result.stop_reason.startswith("resolution")
    assert len(asked) <= 10 and result.measured == [rate for rate, _ in asked]
    assert result.knee is not None and result.knee.meets(0.99)


def test_the_runs_below_the_capacity_meet_and_those_above_do_not():
    result, _ = replay(knee_curve(3.0), RateSearchConfig(start_rps=1.0, remeasure_budget=0))
    met = {rate for rate, run in result.runs.items() if run.meets(0.99)}
    assert met == {rate for rate in result.runs if rate <= result.capacity_rps}  # type: ignore[operator]


def test_a_closer_guess_costs_fewer_runs():
    near, _ = replay(knee_curve(3.0), RateSearchConfig(start_rps=2.9, remeasure_budget=0))
    far, _ = replay(knee_curve(3.0), RateSearchConfig(start_rps=0.1, remeasure_budget=0))
    assert len(near.measured) < len(far.measured)


def test_a_rate_whose_interval_holds_the_target_is_measured_again_within_the_budget():
    # 98.5 % in the first run at any rate near the knee; pooled with a second run it reads 99.25 %
    def measure(rate: float, extra: int) -> RateRun:
        good = {0: 197, 1: 397}[extra] if 2.8 <= rate <= 3.0 else (REQUESTS if rate < 2.8 else 0)
        return RateRun(key=rate_key(rate), rate_rps=rate, good=good, total=REQUESTS * (extra + 1))
    result = drive(capacity_search(RateSearchConfig(start_rps=2.0, remeasure_budget=1)), measure)
    assert result.remeasure_runs == 1 and len(result.remeasured) == 1 and "holds 99%" in result.remeasured[0]
    assert result.capacity_rps is not None and 2.8 <= result.capacity_rps <= 3.0


def test_no_rate_meets_the_slo():
    with pytest.raises(CapacityError, match="no rate from 1 down to"):
        replay(lambda rate: 0.5, RateSearchConfig(start_rps=1.0, max_runs=4))


def test_a_budget_spent_below_the_knee_says_so():
    result, asked = replay(knee_curve(100.0), RateSearchConfig(start_rps=1.0, max_runs=3))
    assert result.capacity_rps == 4.0 and result.failing_rps is None and len(asked) == 3
    assert result.stop_reason.startswith("budget")


@pytest.mark.parametrize(("field", "value", "flag"), [("start_rps", 0.0, "--start-rate"),
                                                       ("attainment", 1.0, "--attainment"),
                                                       ("resolution", 0.0, "--resolution"),
                                                       ("max_runs", 1, "--max-runs"),
                                                       ("remeasure_budget", -1, "--remeasure-budget")])
def test_settings_out_of_range_name_their_flag(field, value, flag):
    with pytest.raises(CapacityError, match=flag):
        RateSearchConfig(**{"start_rps": 1.0, field: value})


def test_wilson_interval_is_not_zero_width_at_all_good():
    low, high = wilson(100, 100)
    assert 0.95 < low < 0.99 < high and high == pytest.approx(1.0)
    assert RateRun(key="k", rate_rps=1.0, good=100, total=100).near(0.99)
    assert not RateRun(key="k", rate_rps=1.0, good=50, total=100).near(0.99)


def test_a_capacity_record_reads_back_as_a_rate_run():
    record = {"key": "rate-2.5", "kind": "capacity", "status": "ok", "config": {"request_rate": 2.5},
              "slo_good": 99, "slo_requests": 100, "slo_met": True, "request_throughput": 2.4, "failed": 1}
    run = to_rate_run(record)
    assert (run.rate_rps, run.attainment, run.failed) == (2.5, 0.99, 1) and run.meets(0.99)
    with pytest.raises(ValueError):
        to_rate_run({"key": "b8", "config": {"max_batch": 8}})


def test_the_closed_loop_throughput_bounds_the_search_and_is_never_run():
    result, asked = replay(knee_curve(3.0), RateSearchConfig(start_rps=3.6, ceiling_rps=3.5, remeasure_budget=0))
    assert asked[0] == (2.975, 0)  # 0.85 x the ceiling
    assert all(rate < 3.5 for rate, _ in asked) and 3.0 / 1.05 <= result.capacity_rps <= 3.0
    unbounded, _ = replay(knee_curve(3.0), RateSearchConfig(start_rps=3.6, remeasure_budget=0))
    assert len(asked) < len(unbounded.measured)
    near, _ = replay(knee_curve(9.0), RateSearchConfig(start_rps=3.6, ceiling_rps=3.5, remeasure_budget=0))
    assert near.at_ceiling and near.failing_rps == 3.5 and "3.5 is the closed-loop throughput" in near.stop_reason
