"""tune's capacity step on recorded runs (tests/data/tune-sweep/capacity, a real `tune --traffic 1.5 --peak 3`
resumed on the recorded sweep): the plan served once, the rate search, the traffic's replica counts in the
advice, advice.json and the report; and the SLO it judges requests by."""

import json
from pathlib import Path

import pytest

from paretoserve.advise import Advice
from paretoserve.advise.traffic import traffic_from_rates, traffic_from_trace
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.diurnal import Diurnal, write_diurnal
from paretoserve.bench.slo import parse_slo
from paretoserve.bench.trace import read_trace
from paretoserve.tune.capacity_step import capacity_slo
from paretoserve.tune.config import CapacityStep, TuneConfig
from paretoserve.tune.pipeline import run_tune
from tests.fakes.replay import RecordedBench, ReplayRuns
from tests.sweep.test_replay import record

RECORDED = Path(__file__).parents[1] / "data" / "tune-sweep"


def recorded_advice() -> Advice:
    return Advice.model_validate_json((RECORDED / "advice.json").read_text())


def test_tune_finds_the_plans_capacity_and_the_replicas_its_traffic_needs(tmp_path):
    served = RecordedBench(RECORDED / "capacity")
    runs, said = ReplayRuns(RECORDED / "sweep", served), []
    step = CapacityStep(traffic=traffic_from_rates(5.0, 12.0))
    result = run_tune(TuneConfig(out=tmp_path / "t", max_batch=64, duration_s=5.0, capacity=step), said.append, runs)
    assert runs.asked[-1] == "serve b32-kvdefault-t0-r1"  # the advised plan, served once for every run
    # the recorded run's order: 0.85 x the plan's closed-loop throughput (3.524 req/s, the ceiling, never run),
    # measured three times (its interval held the target), then up towards the ceiling
    assert served.asked == ["rate-2.995", "rate-2.995", "rate-2.995", "rate-3.249", "rate-3.384", "overload-5.076"]
    capacity = result.advice.capacity
    assert capacity is not None and (capacity.capacity_rps, capacity.failing_rps) == (3.384, None)
    assert (capacity.replicas_at_mean, capacity.replicas_at_peak, capacity.devices_at_peak) == (2, 4, 4)
    assert capacity.slo == "tpot_ms<=671,ttft_ms<=2000" and capacity.directory == str(tmp_path / "t" / "capacity")
    assert "first guess: the plan's closed-loop request throughput, 3.524 req/s" in "\n".join(said)
    assert said[-1] == "tune:   peak 12 req/s x (1 + 0.1 headroom) / 3.38 = 3.90 -> 4 replicas"
    assert json.loads(result.advice_path.read_text())["capacity"]["capacity_rps"] == 3.384
    assert 'id="capacity"' in result.report.html.read_text()

    served = RecordedBench(RECORDED / "capacity")  # resumed: no run is made again
    again = run_tune(TuneConfig(out=tmp_path / "t", max_batch=64, duration_s=5.0, capacity=step, resume=True),
                     lambda line: None, ReplayRuns(RECORDED / "sweep", served))
    assert served.asked == [] and again.advice.capacity == capacity


class TracePlan:
    """A served plan that keeps every request within the SLO up to CAPACITY req/s and none above: each replayed
    trace's requests answered at their own times."""

    CAPACITY = 3.0

    def run(self, bench: BenchConfig) -> dict:
        rows = read_trace(Path(bench.trace_path or ""))
        rate = (len(rows) - 1) / rows[-1].at_s
        ttft = 0.1 if rate <= self.CAPACITY else 3.0
        records = [record(i, row.at_s, ttft=ttft, e2el=ttft + 0.5) for i, row in enumerate(rows)]
        return {"requests": [r.to_dict() for r in records], "completed": len(rows), "failed": 0,
                "slo_attainment": 1.0 if rate <= self.CAPACITY else 0.0, "slo_met": True,
                "request_throughput": min(rate, self.CAPACITY), "duration": rows[-1].at_s + 1, "warnings": []}


def test_a_trace_traffic_is_the_workload_and_is_replayed_through_the_plan(tmp_path):
    trace = tmp_path / "day.jsonl"
    write_diurnal(Diurnal(low_rps=0.5, peak_rps=2, duration_s=240, bursts=1, input_tokens=TokenRange(32, 32),
                          output_tokens=TokenRange(32, 32)), trace)
    step = CapacityStep(traffic=traffic_from_trace(trace, 60.0), trace=trace, replay_speed=2.0)
    said: list[str] = []
    result = run_tune(TuneConfig(out=tmp_path / "t", max_batch=64, duration_s=5.0, capacity=step), said.append,
                      ReplayRuns(RECORDED / "sweep", TracePlan()))
    capacity = result.advice.capacity
    assert capacity is not None and capacity.capacity_rps <= TracePlan.CAPACITY < capacity.failing_rps
    assert capacity.replay is not None and capacity.replay.goal_met and capacity.replay.speed == 2.0
    kept = json.loads((tmp_path / "t" / "replay.json").read_text())
    assert kept["sent"] == len(read_trace(trace)) == capacity.replay.sent and kept["failed"] == 0
    assert any(line.startswith("tune: replay of ") for line in said)


def test_the_capacity_slo_is_the_advices_limits_on_each_request_plus_a_ttft_bound():
    advice = recorded_advice()
    assert capacity_slo(advice, None).text == "tpot_ms<=671,ttft_ms<=2000"
    given = parse_slo("ttft_ms<=500")
    assert capacity_slo(advice, given) is given
    limits = advice.slo.limits
    strict = advice.model_copy(update={"slo": advice.slo.model_copy(update={"limits": [
        limits[0].model_copy(update={"field": "p99_ttft_ms", "strict": True})]})})
    assert capacity_slo(strict, None).text == "ttft_ms<671"  # a TTFT bound of its own: none added


@pytest.mark.parametrize(("field", "value", "flag"), [("attainment", 1.0, "--attainment"),
                                                      ("headroom", 11.0, "--headroom"),
                                                      ("replay_speed", 0.0, "--replay-speed")])
def test_capacity_settings_out_of_range_name_their_flag(field, value, flag):
    with pytest.raises(Exception, match=flag):
        CapacityStep(**{field: value})
