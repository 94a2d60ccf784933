"""tune's capacity step on recorded runs (tests/data/tune-sweep/capacity, a real `tune --traffic 1.5 --peak 3`
resumed on the recorded sweep): the plan served once, the rate search, the traffic's replica counts in the
advice, advice.json and the report; and the SLO it judges requests by."""

import json
from pathlib import Path

import pytest

from paretoserve.advise import Advice
from paretoserve.advise.traffic import traffic_from_rates
from paretoserve.bench.slo import parse_slo
from paretoserve.tune.capacity_step import capacity_slo
from paretoserve.tune.config import CapacityStep, TuneConfig
from paretoserve.tune.pipeline import run_tune
from tests.fakes.replay import ReplayRuns

RECORDED = Path(__file__).parents[1] / "data" / "tune-sweep"


def recorded_advice() -> Advice:
    return Advice.model_validate_json((RECORDED / "advice.json").read_text())


def test_tune_finds_the_plans_capacity_and_the_replicas_its_traffic_needs(tmp_path):
    runs, said = ReplayRuns(RECORDED / "sweep", capacity=RECORDED / "capacity"), []
    step = CapacityStep(traffic=traffic_from_rates(1.5, 3.0))
    result = run_tune(TuneConfig(out=tmp_path / "t", max_batch=64, duration_s=5.0, capacity=step), said.append, runs)
    assert runs.asked[-1] == "serve b32-kvdefault-t0-r1"  # the advised plan, served once for every run
    # the recorded run's order: its first guess is the plan's closed-loop throughput, 2.492 and 2.095 measured twice
    assert runs.bench.asked == ["rate-3.524", "rate-1.762", "rate-2.492", "rate-2.492", "rate-2.095", "rate-2.095",
                                "rate-1.921", "rate-1.84", "overload-2.643"]
    capacity = result.advice.capacity
    assert capacity is not None and (capacity.capacity_rps, capacity.failing_rps) == (1.762, 1.84)
    assert (capacity.replicas_at_mean, capacity.replicas_at_peak, capacity.devices_at_peak) == (1, 2, 2)
    assert capacity.slo == "tpot_ms<=671,ttft_ms<=2000" and capacity.directory == str(tmp_path / "t" / "capacity")
    assert "first guess: the plan's request throughput in tune's closed loop, 3.524" in "\n".join(said)
    assert said[-1] == "tune:   peak 3 req/s x (1 + 0.1 headroom) / 1.76 = 1.87 -> 2 replicas"
    assert json.loads(result.advice_path.read_text())["capacity"]["capacity_rps"] == 1.762
    assert 'id="capacity"' in result.report.html.read_text()

    runs = ReplayRuns(RECORDED / "sweep", capacity=RECORDED / "capacity")  # resumed: no run is made again
    again = run_tune(TuneConfig(out=tmp_path / "t", max_batch=64, duration_s=5.0, capacity=step, resume=True),
                     lambda line: None, runs)
    assert runs.bench.asked == [] and again.advice.capacity == capacity


def test_without_a_capacity_step_nothing_is_served():
    runs = ReplayRuns(RECORDED / "sweep")
    assert not hasattr(runs, "bench")


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
