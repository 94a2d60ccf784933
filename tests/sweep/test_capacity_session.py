"""A capacity session on a simulated endpoint: every run a bench result computed from its rate, no server."""

import json
from pathlib import Path

import pytest

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.slo import parse_slo
from paretoserve.results.store import SweepStore
from paretoserve.results.sweep import read_sweep
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession, trace_rate
from paretoserve.sweep.rate_search import CapacityError

CAPACITY = 3.0  # req/s the simulated endpoint sustains; past it a share is refused with 429


class Simulated:
    """A bench result per run: all good up to CAPACITY, then a falling share within the SLO and the rest refused."""

    def __init__(self) -> None:
        self.asked: list[BenchConfig] = []

    def run(self, bench: BenchConfig) -> dict:
        self.asked.append(bench)
        n = bench.request_limit or 50
        if bench.mode == "concurrency":
            return {"completed": n, "failed": 0, "mean_e2el_ms": 2000.0, "request_throughput": 3.9,
                    "slo_attainment": 1.0, "slo_met": True, "requests": []}
        rate = bench.rate or CAPACITY
        share = 1.0 if rate <= CAPACITY else max(0.0, 1.0 - 2.0 * (rate / CAPACITY - 1.0))
        refused = n - round(share * n)
        requests = [{"intended_s": i / rate, "end_s": i / rate + 1.0, "error": None} for i in range(n - refused)]
        full = "HTTP 429 (Retry-After 1): the queue is full"
        requests += [{"intended_s": 0.0, "end_s": 0.01, "error": full}] * refused
        return {"completed": n - refused, "failed": refused, "slo_attainment": share, "slo_met": True,
                "request_throughput": min(rate, CAPACITY), "mean_e2el_ms": 1000.0, "requests": requests}


def config(tmp_path, **kw) -> CapacityConfig:
    bench = BenchConfig(url="http://127.0.0.1:1", mode="rate", rate=1.0, requests=50,
                        slo=parse_slo(kw.pop("slo", "ttft_ms<=2000")))
    return CapacityConfig(bench=bench, out=tmp_path / "cap", remeasure_budget=0, **kw)


def test_the_session_finds_the_knee_from_littles_law_and_keeps_every_run(tmp_path):
    runs, lines = Simulated(), []
    report = CapacitySession(config(tmp_path), runs, echo=lines.append).run()
    assert report.guess.startswith("Little's law on a closed loop of 8: 8 / 2.00 s")  # 4 req/s
    assert runs.asked[0].mode == "concurrency" and runs.asked[0].concurrency == 8
    assert report.guess.endswith("(measured 3.9, the ceiling)")
    assert runs.asked[1].mode == "rate" and runs.asked[1].rate == 3.315  # 0.85 x the closed loop's 3.9 req/s
    assert max(r.rate or 0 for r in runs.asked[:-1]) < 3.9  # the search never asks past what the closed loop did
    r = report.result
    assert r.capacity_rps is not None and CAPACITY / 1.05 <= r.capacity_rps <= CAPACITY < r.failing_rps
    assert report.overload is not None and report.overload.rate_rps == pytest.approx(1.5 * r.capacity_rps, rel=1e-3)
    assert report.overload.refused > 0 and report.overload.refused == report.overload.refused_with_retry_after
    assert report.overload.unanswered == 0
    assert len(lines) == len(r.measured)  # one line per rate run
    records = SweepStore(tmp_path / "cap").records()
    assert {rec["kind"] for rec in records} == {"capacity"} and not any("requests" in rec for rec in records)
    assert len(records) == 1 + len(r.measured) + 1


def test_a_resumed_session_makes_no_run_again(tmp_path):
    first = CapacitySession(config(tmp_path), Simulated(), echo=lambda _: None).run()
    runs = Simulated()
    again = CapacitySession(config(tmp_path, resume=True), runs, echo=lambda _: None).run()
    assert runs.asked == [] and again.runs == 0
    assert again.result.capacity_rps == first.result.capacity_rps


def test_a_capacity_directory_is_not_read_as_a_sweep_of_batch_points(tmp_path):
    CapacitySession(config(tmp_path), Simulated(), echo=lambda _: None).run()
    with pytest.raises(Exception, match="capacity runs .* and no batch point"):
        read_sweep(tmp_path / "cap")


def test_a_trace_is_replayed_scaled_to_each_rate(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps({"timestamp": 500 * i, "input_length": 16, "output_length": 8})
                               for i in range(11)))  # 2 req/s
    runs = Simulated()
    bench = BenchConfig(url="http://127.0.0.1:1", dataset=f"trace:{trace}", mode="trace",
                        slo=parse_slo("ttft_ms<=2000"))
    session = CapacitySession(CapacityConfig(bench=bench, out=tmp_path / "cap", max_runs=2, overload=0), runs,
                              echo=lambda _: None)
    report = session.run()
    assert report.guess.startswith("the trace's own mean rate, 2 req/s")
    first = runs.asked[0].trace_path
    assert first is not None and trace_rate(tmp_path / "cap" / "traces" / "rate-2.jsonl") == pytest.approx(2.0)
    assert trace_rate(Path(str(runs.asked[1].trace_path))) == pytest.approx(4.0)


def test_an_slo_without_a_per_request_limit_is_refused(tmp_path):
    with pytest.raises(CapacityError, match="--slo: capacity judges each request"):
        config(tmp_path, slo="p99_ttft_ms<=2000")


def test_overload_out_of_range_names_its_flag(tmp_path):
    with pytest.raises(CapacityError, match="--overload"):
        config(tmp_path, overload=0.5)

