"""Several models on one device: the arrangements measured (plans and loads), their order, the mix arithmetic, and
one small run on the two real models."""

import dataclasses
import os
import re

import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.slo import parse_slo
from paretoserve.results.placement import ColocationFigures
from paretoserve.results.setup import ReplicaSetup
from paretoserve.sweep.colocation import (
    Arrangement,
    ColocatedModel,
    ColocationConfig,
    ColocationError,
    LiveColocation,
    arrangements,
    measure_colocation,
    mix_throughput,
)

BENCH = BenchConfig(url="http://127.0.0.1:1", input_tokens=TokenRange(16, 16), output_tokens=TokenRange(8, 8),
                    duration_s=5.0, warmup=3)


@pytest.fixture
def models(tmp_path, cores):
    """Two GGUF files served as alpha and beta (their stems); threads up to 4 pass the plans' checks."""
    cores(4)
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.gguf").write_bytes(b"GGUF" + bytes(28))
    return (ColocatedModel(str(tmp_path / "alpha.gguf"), ReplicaSetup(4, None, 1, 2), 0.7),
            ColocatedModel(str(tmp_path / "beta.gguf"), ReplicaSetup(8, None, 2, 1), 0.3))


class Figures:
    """Answers each run from a table of rates by (arrangement label, model), round after round; keeps what it ran."""

    def __init__(self, rates: dict[tuple[str, str], list[float]], failed: int = 0, goodput: float = 0.5) -> None:
        self.rates, self.failed, self.goodput = rates, failed, goodput
        self.ran: list[Arrangement] = []

    def run(self, arrangement: Arrangement) -> list[dict]:
        self.ran.append(arrangement)
        done = sum(a.label == arrangement.label for a in self.ran) - 1
        return [{"request_throughput": self.rates[arrangement.kind, load.served_model_name][done],
                 "request_goodput": self.goodput if load.slo else None, "failed": self.failed}
                for load in arrangement.loads]


RATES = {("placement", "alpha"): [7.0, 6.0, 5.0], ("placement", "beta"): [2.0, 2.0, 2.0],
         ("time-sharing", "alpha"): [3.5, 3.5, 3.5], ("time-sharing", "beta"): [3.0, 3.0, 3.0],
         ("solo", "alpha"): [10.0, 10.0, 10.0], ("solo", "beta"): [4.0, 4.0, 4.0]}


def test_each_arrangement_serves_its_plans_with_the_same_saturating_load(models):
    placement, shared, solo_a, solo_b = arrangements(ColocationConfig(models, BENCH, ctx_per_seq=64, cores=4))
    assert [a.label for a in (placement, shared, solo_a, solo_b)] == ["placement", "time-sharing", "solo alpha",
                                                                      "solo beta"]
    assert [(p.replicas, p.max_batch, p.threads_per_replica, p.pin, p.ctx_per_seq) for p in placement.plans] == \
        [(2, 4, 1, True, 64), (1, 8, 2, True, 64)]  # each on cores of its own: 2 x 1 + 1 x 2 of the 4
    assert [(p.threads_per_replica, p.pin) for p in shared.plans] == [(4, False), (4, False)]  # every core, unpinned
    assert [(p.replicas, p.threads_per_replica, p.pin) for a in (solo_a, solo_b) for p in a.plans] == \
        [(2, 0, True), (1, 0, True)]  # threads 0: all the cores shared among its replicas
    for arrangement in (placement, shared):
        assert [(load.served_model_name, load.concurrency, load.duration_s, load.input_tokens)
                for load in arrangement.loads] == [("alpha", 8, 5.0, TokenRange(16, 16)),
                                                   ("beta", 8, 5.0, TokenRange(16, 16))]  # cap x replicas each
    assert solo_a.loads == placement.loads[:1] and solo_b.loads == placement.loads[1:]


def test_every_arrangement_runs_the_tuned_engine_with_each_models_memory_share(models):
    shared = (dataclasses.replace(models[0], mem_fraction=0.5), dataclasses.replace(models[1], mem_fraction=0.3))
    for arrangement in arrangements(ColocationConfig(shared, BENCH, cores=4, engine="llama-server")):
        assert {p.engine for p in arrangement.plans} == {"llama-server"}
        assert {p.mem_fraction for p in arrangement.plans} <= {0.5, 0.3}


def test_rounds_run_every_arrangement_in_turn(models):
    runs, said = Figures(RATES), []
    result = measure_colocation(ColocationConfig(models, BENCH, repeats=3, cores=4), runs, said.append)
    assert [a.label for a in runs.ran] == ["placement", "time-sharing", "solo alpha", "solo beta"] * 3
    assert said[0] == "placement (round 1/3): alpha 7.00, beta 2.00 req/s" and len(said) == 12
    assert result.runs == 12 and result.models[0].rounds["placement"] == (7.0, 6.0, 5.0)
    assert result.models[0].rate("placement") == 6.0  # the median of the rounds


def test_mix_throughput_is_the_rate_the_scarcest_model_allows():
    assert mix_throughput([6.0, 2.0], [0.7, 0.3]) == pytest.approx(2.0 / 0.3)  # beta limits: 0.3 R <= 2
    assert mix_throughput([3.0, 3.0], [0.5, 0.5]) == 6.0


def test_the_figures_of_each_arrangement_and_model(models):
    result = measure_colocation(ColocationConfig(models, BENCH, repeats=3, cores=4), Figures(RATES))
    alpha, beta = result.models
    assert (alpha.name, alpha.share, alpha.metric) == ("alpha", 0.7, "request_throughput")
    assert result.mix_rps("placement") == pytest.approx(min(6.0 / 0.7, 2.0 / 0.3))
    assert result.mix_rps("time-sharing") == pytest.approx(min(3.5 / 0.7, 3.0 / 0.3))
    assert result.mix_rps("solo") == pytest.approx(min(10.0 / 0.7, 4.0 / 0.3)) and result.devices == 2
    assert (alpha.interference, beta.interference) == (pytest.approx(0.6), pytest.approx(0.5))
    d = result.figures().to_dict()
    assert d["source"] == "measured" and d["devices"] == 2 and d["runs"] == 12
    assert d["mix_throughput_rps"] == {"placement": pytest.approx(2.0 / 0.3), "time_sharing": 5.0,
                                       "solo": pytest.approx(4.0 / 0.3), "solo_per_device": pytest.approx(2.0 / 0.3)}
    assert ColocationFigures.from_dict(d) == result.figures()  # placement.json reads back as it was written
    assert d["models"][1] == {"name": "beta", "share": 0.3, "metric": "request_throughput", "interference": 0.5,
                              "placement_rps": 2.0, "time_sharing_rps": 3.0, "solo_rps": 4.0,
                              "rounds": {"placement": [2.0] * 3, "time_sharing": [3.0] * 3, "solo": [4.0] * 3}}
    text = "\n".join(result.lines())
    assert "needs 2 devices, 13.33 req/s (6.67 per device)" in text
    assert "placement / time-sharing 1.33" in text and "placement / per device 1.00" in text


def test_a_model_with_an_slo_counts_its_goodput(models):
    slo = parse_slo("tpot_ms<=50")
    strict = (models[0], ColocatedModel(models[1].model, models[1].setup, models[1].share, slo))
    result = measure_colocation(ColocationConfig(strict, BENCH, cores=4), Figures(RATES, goodput=1.5))
    assert [m.metric for m in result.models] == ["request_throughput", "request_goodput"]
    assert result.models[1].rate("placement") == 1.5 and result.models[0].rate("placement") == 7.0


def test_a_model_that_misses_its_run_slo_at_saturation_is_warned_about(models):
    run_slo = parse_slo("mean_tpot_ms<=50")
    judged = (models[0], dataclasses.replace(models[1], slo=run_slo))

    class Missed(Figures):
        def run(self, arrangement):
            return [{**r, "slo_met": False} for r in super().run(arrangement)]

    result = measure_colocation(ColocationConfig(judged, BENCH, cores=4), Missed(RATES))
    assert "placement, round 1: beta missed its SLO (mean_tpot_ms<=50) at saturation" in result.warnings
    assert not any("alpha missed" in w for w in result.warnings)  # no SLO of its own, nothing to miss


def test_failed_requests_are_warned_about(models):
    result = measure_colocation(ColocationConfig(models, BENCH, cores=4), Figures(RATES, failed=2))
    assert result.warnings[0] == "placement, round 1: alpha had 2 failed requests (left out of its rate)"
    assert "warning: placement, round 1" in "\n".join(result.lines())


@pytest.mark.parametrize("change, message", [
    (dict(shares=(0.7, 0.4)), "--mix: each model's share must be in (0, 1] and the shares must sum to 1; got 0.7,0.4"),
    (dict(shares=(1.0,)), "--model: give at least two models"),
    (dict(bench=dict(duration_s=None, requests=10)), "give --duration S"),
    (dict(repeats=0), "--repeats"),
])
def test_what_cannot_be_measured_together_is_refused(models, change, message):
    shares = change.get("shares", (0.7, 0.3))  # one share: one model
    chosen = [ColocatedModel(m.model, m.setup, s) for m, s in zip(models, shares, strict=False)]
    bench = BenchConfig(**{**dict(url=BENCH.url, duration_s=5.0), **change.get("bench", {})})
    with pytest.raises(ColocationError, match=re.escape(message)):
        ColocationConfig(tuple(chosen), bench, repeats=change.get("repeats", 1))


def test_a_placement_beyond_the_devices_cores_is_refused(models):
    with pytest.raises(ColocationError, match=r"the models need 4 cores \(2 x 1 \+ 1 x 2"):
        arrangements(ColocationConfig(models, BENCH, cores=3))


@pytest.mark.integration
def test_two_real_models_placed_against_time_sharing_and_alone(smollm2_gguf, tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the placement gives each model a core of its own: needs 2 cores")
    setup = ReplicaSetup(2, None, 1, 1)  # a batch of 2 on one thread each: both fit a 2-core machine
    cfg = ColocationConfig((ColocatedModel("default", setup, 0.5), ColocatedModel("smollm2", setup, 0.5)),
                           BenchConfig(url="http://127.0.0.1:1", input_tokens=TokenRange(8, 8),
                                       output_tokens=TokenRange(4, 4), duration_s=2.0, energy="none"),
                           ctx_per_seq=64)
    said: list[str] = []
    result = measure_colocation(cfg, LiveColocation(tmp_path), said.append)
    assert [m.name for m in result.models] == ["gemma-3-270m-q4_k_m", "SmolLM2-135M-Instruct.Q4_1"]
    assert result.runs == 4 and len(said) == 4 and not result.warnings
    for m in result.models:
        assert all(m.rate(kind) > 0 for kind in ("placement", "time-sharing", "solo"))
    rates = [m.rate("placement") for m in result.models]
    assert result.mix_rps("placement") == pytest.approx(2 * min(rates))
    assert (tmp_path / "placement" / "serve.log").is_file() and (tmp_path / "solo-gemma-3-270m-q4_k_m").is_dir()
