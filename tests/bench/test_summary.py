"""The metric arithmetic on hand-made request records: exact values, worked out by hand."""

from __future__ import annotations

import pytest

from paretoserve.bench import slo
from paretoserve.bench.energy import EnergyPlan
from paretoserve.bench.loadgen import LoadResult
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.sampler import Sample
from paretoserve.bench.steady import in_flight_window, tokens_in
from paretoserve.bench.summary import client_warnings, energy_fields, engine_fields, latency_fields, summarize


def rec(index, intended, sent, tokens, end, out=None, error=None, n_in=10):
    r = RequestRecord(index, intended, out or len(tokens), n_in, sent_s=sent, token_s=list(tokens), end_s=end,
                      output_tokens=out if out is not None else len(tokens), usage_reported=True, error=error)
    return r


def two_good_one_failed():
    # A: ttft 100, 4 tokens 20 ms apart, ends at 170 -> tpot 70/3, itl [20, 20, 20], e2el 170
    a = rec(0, 0.0, 0.0, [0.10, 0.12, 0.14, 0.16], 0.17)
    # B: meant for 50 ms, sent at 60 ms (late client): ttft counts from 50 ms -> 200; tpot 110; e2el 310
    b = rec(1, 0.05, 0.06, [0.25, 0.35], 0.36)
    # C failed after one token: counted apart, in no latency figure
    c = rec(2, 0.0, 0.0, [0.01], 0.5, error="HTTP 500: boom")
    return [a, b, c]


def test_latencies_are_exact_and_count_from_the_intended_send_time():
    f = latency_fields(two_good_one_failed())
    assert f["mean_ttft_ms"] == pytest.approx(150.0)
    assert f["median_ttft_ms"] == pytest.approx(150.0)
    assert f["p90_ttft_ms"] == pytest.approx(190.0)
    assert f["p99_ttft_ms"] == pytest.approx(199.0)
    assert f["mean_tpot_ms"] == pytest.approx((70 / 3 + 110) / 2)
    assert f["mean_itl_ms"] == pytest.approx(40.0)  # pooled gaps [20, 20, 20, 100]
    assert f["median_itl_ms"] == pytest.approx(20.0)
    assert f["p90_itl_ms"] == pytest.approx(76.0)
    assert f["p99_itl_ms"] == pytest.approx(97.6)
    assert f["mean_e2el_ms"] == pytest.approx(240.0)
    assert f["p99_e2el_ms"] == pytest.approx(170 + 0.99 * 140)


def test_failures_are_counted_apart_and_left_out_of_throughput():
    result = summarize(LoadResult(two_good_one_failed(), client_cpu_s=0.05, wall_s=0.5), [], 2, [],
                       EnergyPlan("none"), ignore_eos=True)
    assert (result["completed"], result["failed"]) == (2, 1)
    assert result["duration"] == 0.5
    assert result["total_output_tokens"] == 6 and result["total_input_tokens"] == 20
    assert result["request_throughput"] == pytest.approx(4.0)
    assert result["output_throughput"] == pytest.approx(12.0)
    assert result["total_token_throughput"] == pytest.approx(52.0)
    assert result["schedule_lag_p99_ms"] == pytest.approx(9.8)  # lags [0, 0, 10] ms: 0 + 0.98 x 10
    assert any("1 of 3 requests failed" in w for w in result["warnings"])
    assert result["request_goodput"] is None


def test_goodput_and_attainment_per_request_and_aggregate_limits():
    limits = slo.parse_slo("tpot_ms<=30, p99_ttft_ms<=150,median_e2el_ms<=300")
    result = summarize(LoadResult(two_good_one_failed(), 0.0, 0.5), [], None, limits, EnergyPlan("none"), True)
    assert result["request_goodput"] == pytest.approx(2.0)  # only A is good: 1 request / 0.5 s
    assert result["slo_attainment"] == pytest.approx(1 / 3)  # the failed request counts as missed
    assert result["slo_met"] is False  # p99 TTFT is 199 ms
    checks = {c["limit"]: c for c in result["slo_checks"]}
    assert checks["p50_e2el_ms<=300"]["met"] and checks["p50_e2el_ms<=300"]["value"] == pytest.approx(240.0)
    assert checks["tpot_ms<=30"]["requests_within"] == 1


def test_itl_limit_is_a_requests_largest_gap():
    limits = slo.parse_slo("itl_ms<50")
    result = summarize(LoadResult(two_good_one_failed(), 0.0, 0.5), [], None, limits, EnergyPlan("none"), True)
    assert result["slo_attainment"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("bad", ["ttft<=3", "p95_ttft_ms<=3", "tpot_ms>=3", "tpot_ms<=0", "tpot_ms<=abc", ""])
def test_slo_parse_errors_name_the_flag(bad):
    with pytest.raises(slo.SloError, match="--slo"):
        slo.parse_slo(bad)


def closed_loop_records():
    """Concurrency 2: a worker sends again the moment its request ends."""
    return [rec(0, 0.0, 0.0, [0.5], 1.0), rec(1, 0.1, 0.1, [0.6], 1.5), rec(2, 1.0, 1.0, [1.2], 2.0),
            rec(3, 1.5, 1.5, [1.7], 2.6), rec(4, 2.0, 2.0, [2.2], 3.0)]


def test_steady_window_runs_from_all_slots_busy_to_the_first_end_after_the_last_send():
    assert in_flight_window(closed_loop_records(), 2) == (0.1, 2.6)
    assert in_flight_window(closed_loop_records(), 3) is None


def test_steady_fields_cover_only_the_window():
    result = summarize(LoadResult(closed_loop_records(), 0.0, 3.0), [], 2, [], EnergyPlan("none"), True)
    steady = result["steady_state"]
    assert (steady["start_s"], steady["end_s"]) == (0.1, 2.6)
    assert steady["duration"] == pytest.approx(2.5)
    assert steady["completed"] == 3  # requests 1, 2, 3 were sent and ended inside it
    assert steady["request_throughput"] == pytest.approx(4 / 2.5)  # ends at 1.0, 1.5, 2.0, 2.6
    assert steady["output_throughput"] == pytest.approx(5 / 2.5)  # tokens at 0.5 0.6 1.2 1.7 2.2
    assert steady["mean_e2el_ms"] == pytest.approx((1400 + 1000 + 1100) / 3)
    unsaturated = summarize(LoadResult(closed_loop_records(), 0.0, 3.0), [], 3, [], EnergyPlan("none"), True)
    assert "never in flight" in unsaturated["steady_state"]["reason"]


def test_tokens_in_window_share_the_usage_count_over_chunks():
    r = rec(0, 0.0, 0.0, [1.0, 2.0, 3.0, 4.0], 4.0, out=8)  # 2 tokens per chunk
    assert tokens_in(r, 1.5, 3.5) == pytest.approx(4.0)


def test_engine_fields_average_during_the_run_and_peak_over_all_samples():
    samples = [Sample(0.0, running=0, kv_used_fraction=0.0, preemptions_total=5, rss_bytes=100, engine_cpu_s=1.0),
               Sample(1.0, running=4, waiting=2, kv_used_fraction=0.5, preemptions_total=6, rss_bytes=300,
                      gpu_memory_used_bytes=7),
               Sample(2.0, running=2, waiting=0, kv_used_fraction=0.25, preemptions_total=8, rss_bytes=200),
               Sample(3.5, running=0, preemptions_total=8, rss_bytes=150, engine_cpu_s=6.25)]
    f = engine_fields(samples, duration_s=3.0)
    assert f["engine_cpu_cores"] == pytest.approx(1.5)
    assert f["mean_running"] == 3.0 and f["max_running"] == 4 and f["mean_waiting"] == 1.0
    assert f["kv_peak_fraction"] == 0.5 and f["preemptions"] == 3
    assert f["rss_peak_bytes"] == 300 and f["device_memory_peak_bytes"] == 7


def test_estimated_energy_is_cpu_seconds_times_watts_per_core():
    samples = [Sample(0.0, engine_cpu_s=10.0), Sample(5.0, engine_cpu_s=14.0)]
    f = energy_fields(EnergyPlan("estimated", 12.0, "estimated: ..."), samples, total_output_tokens=96)
    assert f["energy_j"] == pytest.approx(48.0)
    assert f["energy_per_output_token_j"] == pytest.approx(0.5)
    assert f["energy_source"] == "estimated"
    missing = energy_fields(EnergyPlan("nvml"), [Sample(0.0), Sample(1.0)], 10)
    assert missing["energy_j"] is None and missing["energy_source"] == "none"


def test_warns_when_engine_and_client_share_busy_cores():
    quiet = {"client_cpu_fraction": 0.05, "schedule_lag_p99_ms": 0.5, "event_loop_lag_p99_ms": 1.0,
             "client_overhead_per_chunk_p50_ms": 0.01}
    assert client_warnings(quiet, median_itl_ms=20.0, engine_cpu_cores=1.0, cores=2) == []
    [busy] = client_warnings(quiet, median_itl_ms=20.0, engine_cpu_cores=1.9, cores=2)
    assert "the engine (1.9 cores) and this client (5% of a core) kept the 2 cores here busy" in busy
    loud = {"client_cpu_fraction": 0.95, "schedule_lag_p99_ms": 12.0, "event_loop_lag_p99_ms": 8.0,
            "client_overhead_per_chunk_p50_ms": 3.0}
    warnings = client_warnings(loud, median_itl_ms=20.0)
    assert len(warnings) == 4 and "12.0 ms later than planned" in warnings[0]
