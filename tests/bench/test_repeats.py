"""Repeats: headline means, t intervals, summed counts, and no interval from one run."""

import statistics

import pytest

from paretoserve.bench.repeats import combine, interval, t_quantile


def run(tok_s: float, p99_ttft: float, completed: int = 10, **extra) -> dict:
    return {"output_throughput": tok_s, "p99_ttft_ms": p99_ttft, "completed": completed, "failed": 0,
            "duration": 10.0, "max_running": 4.0, "mean_running": 3.0, "warnings": [], "samples": [{"t_s": 0}],
            **extra}


def test_the_interval_is_students_t_over_the_repeats():
    values = [100.0, 110.0, 90.0]
    low, high = interval(values)
    half = 4.303 * statistics.stdev(values) / 3 ** 0.5  # t(0.975, df=2)
    assert (low, high) == pytest.approx((100 - half, 100 + half))
    assert t_quantile(1) == 12.706 and t_quantile(100) == 1.96


def test_one_run_has_no_interval_rather_than_a_zero_width_one():
    assert interval([5.0]) is None
    single = combine([run(100.0, 50.0)])
    assert single["repeats"] == 1 and "ci95" not in single and single["output_throughput"] == 100.0


def test_repeats_give_means_intervals_sums_and_each_summary():
    result = combine([run(100.0, 50.0, max_running=4.0), run(110.0, 70.0, max_running=6.0, mean_running=5.0),
                      run(90.0, 60.0)])
    assert result["repeats"] == 3
    assert result["output_throughput"] == pytest.approx(100.0) and result["p99_ttft_ms"] == pytest.approx(60.0)
    low, high = result["ci95"]["output_throughput"]
    assert low < 100.0 < high
    assert result["completed"] == 30 and result["duration"] == 30.0
    assert result["max_running"] == 6.0 and result["mean_running"] == pytest.approx(11 / 3)
    assert [s["output_throughput"] for s in result["repeat_summaries"]] == [100.0, 110.0, 90.0]
    assert result["samples"] == [{"t_s": 0}]  # the first run's series


def test_a_wide_interval_is_a_warning_and_a_tight_one_is_not():
    noisy = combine([run(100.0, 50.0), run(160.0, 50.0)])
    assert any("output_throughput" in w and "noisy" in w for w in noisy["warnings"])
    quiet = combine([run(100.0, 50.0), run(100.5, 50.0), run(99.5, 50.0)])
    assert not any("noisy" in w for w in quiet["warnings"])


def test_a_figure_one_run_lacks_gets_a_mean_but_no_interval():
    result = combine([run(100.0, 50.0, request_goodput=2.0), run(110.0, 50.0, request_goodput=None)])
    assert result["request_goodput"] == 2.0 and "request_goodput" not in result["ci95"]
