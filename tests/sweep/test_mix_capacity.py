"""The capacity of a mix of models: the total rate at which every model keeps its requests within its SLO, searched
on simulated models whose attainment falls past a rate of their own."""

import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.slo import parse_slo
from paretoserve.results.placement import MixCapacityFigures
from paretoserve.results.rate_run import RateRun
from paretoserve.sweep.mix_capacity import MixLoad, mix_capacity, worst
from paretoserve.sweep.rate_search import RateSearchConfig


def load(name: str, share: float) -> MixLoad:
    bench = BenchConfig(url="http://127.0.0.1:1", input_tokens=TokenRange(16, 16), output_tokens=TokenRange(8, 8),
                        duration_s=5.0, mode="rate", rate=1.0, served_model_name=name, slo=parse_slo("ttft_ms<=500"))
    return MixLoad(share, bench)


class Models:
    """Each model keeps all of its 50 requests a run within its SLO up to its own rate, and 60 % past it."""

    def __init__(self, sustained: dict[str, float]) -> None:
        self.sustained = sustained
        self.sent: list[dict[str, float]] = []

    def run(self, loads: list[BenchConfig]) -> list[dict]:
        self.sent.append({b.served_model_name: b.rate for b in loads})
        return [{"completed": 50, "failed": 0, "request_throughput": b.rate,
                 "slo_attainment": 1.0 if b.rate <= self.sustained[b.served_model_name] else 0.6} for b in loads]


def test_the_mix_meets_while_its_scarcest_model_does():
    # alpha takes 70 % of the requests and sustains 3.5 req/s (5 in all); beta 30 % and 3 req/s (10 in all)
    models, said = Models({"alpha": 3.5, "beta": 3.0}), []
    found = mix_capacity([load("alpha", 0.7), load("beta", 0.3)],
                         RateSearchConfig(start_rps=8.0, ceiling_rps=8.0, resolution=0.05, remeasure_budget=0),
                         models, said.append)
    assert 5.0 / 1.05 <= found.capacity_rps <= 5.0 < found.failing_rps
    assert all(sent["alpha"] == pytest.approx(0.7 / 0.3 * sent["beta"]) for sent in models.sent)  # the mix kept
    assert max(sum(sent.values()) for sent in models.sent) <= 8.0  # never above the saturation ceiling
    failing = next(run for run in found.runs if not run.met)
    assert [m.met for m in failing.models] == [False, True]  # alpha, the scarce one, missed; beta did not
    assert [run.rate_rps for run in found.runs] == sorted(run.rate_rps for run in found.runs)
    assert found.lines()[0].startswith(f"mix capacity: {found.capacity_rps:.3g} req/s in all") and len(said) == len(
        found.runs)
    kept = found.to_dict()
    assert kept["runs"][0]["models"][0]["slo"] == "ttft_ms<=500" and MixCapacityFigures.from_dict(kept) == found


def test_a_mix_that_meets_at_no_rate_has_no_capacity_and_says_why():
    found = mix_capacity([load("alpha", 0.5), load("beta", 0.5)],
                         RateSearchConfig(start_rps=4.0, ceiling_rps=4.0, max_runs=3, remeasure_budget=0),
                         Models({"alpha": 0.01, "beta": 9.0}))
    assert found.capacity_rps is None and "no rate" in found.stop_reason and len(found.runs) == 3
    assert found.lines()[0] == f"mix capacity: none found ({found.stop_reason})"


def test_the_worst_model_is_one_whose_run_limit_failed_then_the_lowest_attainment():
    low = RateRun("r", 1.0, good=90, total=100)
    limit_missed = RateRun("r", 1.0, good=100, total=100, slo_met=False)
    assert worst([low, limit_missed], 0.99) is limit_missed
    assert worst([RateRun("r", 1.0, good=99, total=100), low], 0.5) is low
