"""`tune --model A --model B`: each model tuned on its share of the cores, placed together, the placement measured
beside time-sharing and each model alone; on simulated engines and recorded figures (no engine starts)."""

import contextlib
import json
import types
from pathlib import Path

import pytest

from paretoserve.advise import AdviseConfig
from paretoserve.cli import build_parser, main
from paretoserve.cli.serve_cmd import plans_from_args
from paretoserve.results.setup import ReplicaSetup
from paretoserve.sweep.colocation import Arrangement
from paretoserve.sweep.grid import SweepSpec
from paretoserve.tune.config import TuneConfig, TuneError
from paretoserve.tune.placement import PlacementConfig, model_dir, run_placement
from tests.report.sweeps import make_point

ENVIRONMENT = json.loads((Path(__file__).parents[1] / "data" / "tune-sweep" / "sweep" / "sweep.json").read_text())[
    "environment"]
PLATEAU = {"a.gguf": 4, "b.gguf": 8}  # the batch at which each simulated model's throughput nearly stops growing


class Simulated:
    """Engines whose throughput grows with the batch up to its model's plateau, then stays: every point a whole
    record, no engine started."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def prepare(self, spec: SweepSpec) -> None:
        pass

    def environment(self) -> dict:
        return ENVIRONMENT

    def run(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> dict:
        self.asked.append((Path(spec.model).name, point.key()))
        plateau = PLATEAU[Path(spec.model).name]
        return make_point(point.max_batch, 20.0 * min(point.max_batch, plateau) + point.max_batch * 0.01,
                          threads=point.threads)

    def serving(self, spec, point, log_path):
        raise AssertionError("nothing is served for one model's tune within a placement")


class Measured:
    """The colocation runs: each model's rate by arrangement kind, requests/s; served, each model keeps every
    request within its SLO up to SUSTAINED requests/s of its own, and none past it."""

    RATES = {"placement": 4.0, "time-sharing": 3.0, "solo": 5.0}
    SUSTAINED = 3.0

    def __init__(self) -> None:
        self.ran: list[Arrangement] = []
        self.served: list[Arrangement] = []
        self.rates: list[list[float]] = []  # each mix run's rate per model

    def run(self, arrangement: Arrangement) -> list[dict]:
        self.ran.append(arrangement)
        return [{"request_goodput": self.RATES[arrangement.kind], "failed": 0} for _ in arrangement.loads]

    @contextlib.contextmanager
    def serving(self, arrangement: Arrangement):
        self.served.append(arrangement)
        yield types.SimpleNamespace(run=self.run_mix)

    def run_mix(self, loads) -> list[dict]:
        self.rates.append([load.rate for load in loads])
        return [{"completed": 40, "failed": 0, "slo_attainment": 1.0 if load.rate <= self.SUSTAINED else 0.5,
                 "request_throughput": load.rate} for load in loads]


@pytest.fixture
def models(tmp_path, cores):
    cores(2)
    for name in PLATEAU:
        (tmp_path / name).write_bytes(b"GGUF" + bytes(28))
    return tuple(str(tmp_path / name) for name in PLATEAU)


def test_each_model_is_tuned_on_its_cores_then_placed_together_and_measured(tmp_path, models):
    runs, measured, said = Simulated(), Measured(), []
    cfg = PlacementConfig(TuneConfig(out=tmp_path / "t", max_batch=16, duration_s=5.0), models, (0.5, 0.5))
    result = run_placement(cfg, said.append, runs, measured)
    assert {model for model, _ in runs.asked} == set(PLATEAU) and all(key.endswith("-t1-r1") for _, key in runs.asked)
    caps = [a.b_opt_max_batch for a in result.advices]  # each model's B_opt, searched on its 1 core
    assert (model_dir(tmp_path / "t", models[0]) / "advice.json").is_file()
    placement, shared, *solo = measured.ran
    assert [(p.max_batch, p.threads_per_replica) for p in placement.plans] == [(caps[0], 1), (caps[1], 1)]
    assert [p.kv_tokens for p in placement.plans] == [a.commands.kv_tokens for a in result.advices]
    assert [load.concurrency for load in placement.loads] == caps and len(solo) == 2
    kept = json.loads(result.path.read_text())
    assert [m["max_batch"] for m in kept["models"]] == caps and kept["colocation"]["mix_throughput_rps"] == {
        "placement": 8.0, "time_sharing": 6.0, "solo": 10.0, "solo_per_device": 5.0}
    # each model's run judged by its own SLO as the BCA judged its caps: its rate is goodput
    assert all(load.slo is not None and load.slo.text.startswith("mean_tpot_ms<=") for load in placement.loads)
    assert {m["metric"] for m in kept["colocation"]["models"]} == {"request_goodput"}
    # the mix's capacity, searched on the placement served once more below its 8 req/s at saturation: each model
    # keeps its requests within the SLO up to 3 req/s of its own, so the mix (half each) up to 6 in all
    assert measured.served == [placement] and all(max(rates) <= 8.0 for rates in measured.rates)
    mix = kept["mix_capacity"]
    assert mix["capacity_rps"] <= 6.0 < mix["failing_rps"] and mix["capacity_rps"] >= 6.0 / 1.1 ** 2
    assert all(run["met"] == (run["rate_rps"] <= 6.0) for run in mix["runs"])
    assert any(line.startswith("tune: mix capacity: ") for line in said)
    assert result.report == tmp_path / "t" / "report.html" and "memory" in result.report.read_text().lower()
    assert any(line.startswith("tune: memory: ") for line in said)
    assert kept["memory"]["used_bytes"] == result.memory.used_bytes and len(kept["memory"]["models"]) == 2
    serve_yaml = (tmp_path / "t" / "ray-serve.yaml").read_text()
    assert result.ray_configs[0].name == "ray-serve.yaml" and "EngineReplica-1" in serve_yaml


def test_each_model_is_advised_and_judged_under_its_own_slo(tmp_path, models):
    own = (AdviseConfig(slo="tpot_ms<=900"), AdviseConfig(slo="tpot_ms<=700,ttft_ms<=1500"))
    measured = Measured()
    result = run_placement(PlacementConfig(TuneConfig(out=tmp_path / "t", max_batch=16, duration_s=5.0), models,
                                           (0.5, 0.5), advices=own), lambda line: None, Simulated(), measured)
    assert [a.slo.text for a in result.advices] == ["mean_tpot_ms<=900 (--slo)",
                                                    "mean_tpot_ms<=700 (--slo), mean_ttft_ms<=1500 (--slo)"]
    # at saturation each run is judged as the BCA judged it; in the mix's capacity each request, the first's limit
    # with capacity's TTFT bound, the second's own TTFT bound kept
    assert [load.slo.text for load in measured.ran[0].loads] == ["mean_tpot_ms<=900",
                                                                 "mean_tpot_ms<=700,mean_ttft_ms<=1500"]
    assert [m.slo for m in result.mix.runs[0].models] == ["tpot_ms<=900,ttft_ms<=2000",
                                                                "tpot_ms<=700,ttft_ms<=1500"]


def test_a_placement_needs_a_core_per_model_and_a_share_each(tmp_path, models, cores):
    base = TuneConfig(out=tmp_path / "t")
    with pytest.raises(TuneError, match="--mix gives 1 shares for 2 models"):
        PlacementConfig(base, models, (1.0,))
    with pytest.raises(TuneError, match="3 models need a core each"):
        PlacementConfig(base, (*models, "default"), (0.4, 0.3, 0.3))
    with pytest.raises(TuneError, match="each model once"):
        PlacementConfig(base, (models[0], models[0]), (0.5, 0.5))


@pytest.mark.parametrize(("flags", "message"), [
    (["--mix", "0.5,0.5"], "--mix needs several --model"),
    (["--model", "a", "--model", "b", "--mix", "0.7,0.7"], "--mix: each share must be in (0, 1] and they must sum"),
    (["--model", "a", "--model", "b", "--mix", "x"], "--mix must be shares separated by commas"),
    (["--model", "a", "--model", "b", "--threads", "1"], "--threads applies to one --model"),
    (["--model", "a", "--model", "b", "--traffic", "3"], "--traffic and --capacity applies to one --model"),
    (["--model", "a", "--model", "b", *["--slo", "tpot_ms<=50"] * 3], "--slo: given 3 times for 2 model(s)"),
    (["--slo", "tpot_ms<=50", "--slo", "tpot_ms<=60"], "--slo: given 2 times for 1 model(s)"),
    (["--attainment", "0.9"], "--attainment applies to the capacity step: give --capacity or --traffic"),
    (["--headroom", "0.2"], "--headroom applies to the capacity step"),
    (["--capacity-slo", "ttft_ms<=100"], "--capacity-slo applies to the capacity step"),
    (["--model", "a", "--model", "b", "--attainment", "1.5"], "--attainment must be in (0, 1)"),
])
def test_tune_refuses_what_several_models_cannot_take(tmp_path, capsys, flags, message):
    assert main(["tune", "--out", str(tmp_path / "t"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_serve_takes_the_placement_file_with_its_models_and_plans(tmp_path, models):
    result = run_placement(PlacementConfig(TuneConfig(out=tmp_path / "t", max_batch=16, duration_s=5.0), models,
                                           (0.5, 0.5)), lambda line: None, Simulated(), Measured())
    assert result.serve_command == f"paretoserve serve --plan {result.path} --port 8000"
    argv = ["serve", "--plan", str(result.path), "--engine-cmd", "engine --port {port}"]
    plans = plans_from_args(build_parser(argv).parse_args(argv))
    assert [(p.model, p.replicas, p.max_batch, p.threads_per_replica) for p in plans] == [
        (m, 1, a.b_opt_max_batch, 1) for m, a in zip(models, result.advices, strict=True)]
    # each model's KV sized for its cap alone, and its share of the device's memory, from the placement
    assert [(p.kv_tokens, p.mem_fraction) for p in plans] == [
        (m.kv_tokens, m.mem_fraction) for m in result.memory.models]
    assert all(p.kv_tokens == a.commands.kv_tokens for p, a in zip(plans, result.advices, strict=True))
    argv_share = [*argv, "--mem-fraction", "0.2"]  # the flag over the placement's shares
    assert {p.mem_fraction for p in plans_from_args(build_parser(argv_share).parse_args(argv_share))} == {0.2}
    assert main([*argv, "--model", models[0]]) == 2  # the placement names its models
