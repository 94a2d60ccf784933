"""The whole tune loop on recorded points (tests/data/tune-sweep): search, advise, the replica run, advice.json, the
Ray Serve configs and the report, without starting an engine."""

import json
from pathlib import Path

from paretoserve.advise import AdviseConfig, load_table
from paretoserve.cli.tune_cmd import summary
from paretoserve.tune import TuneConfig, run_tune
from paretoserve.tune.pipeline import _advise
from tests.fakes.replay import ReplayRuns
from tests.report.sweeps import make_point, write_sweep

RECORDED = Path(__file__).parents[1] / "data" / "tune-sweep"


def recorded_config(out: Path, **changes) -> TuneConfig:
    """The settings the recording was made with (its README), writing to `out`."""
    return TuneConfig(out=out, max_batch=64, duration_s=5.0, **changes)


def comparable(advice: dict, out: Path) -> dict:
    """advice.json with its directory named OUT, as the recording's is."""
    return json.loads(json.dumps(advice).replace(str(out), "OUT"))


def test_tune_on_recorded_points_advises_as_the_recorded_run_did(tmp_path):
    runs, said = ReplayRuns(RECORDED / "sweep"), []
    result = run_tune(recorded_config(tmp_path / "t"), said.append, runs)
    recorded = [json.loads(line)["key"] for line in (RECORDED / "sweep" / "points.jsonl").read_text().splitlines()]
    assert runs.asked == recorded and runs.prepared == 1  # the same points, in the same order
    assert result.points_run == len(recorded) and result.replica_record["config"]["replicas"] > 1
    written = json.loads(result.advice_path.read_text())
    assert comparable(written, tmp_path / "t") == json.loads((RECORDED / "advice.json").read_text())
    for name in ("ray-serve.yaml", "ray-serve-llm.yaml"):
        assert (tmp_path / "t" / name).read_text().replace(str(tmp_path / "t"), "OUT") == (RECORDED / name).read_text()
    assert summary(result).splitlines()[:3] == [
        "B_opt = 32 (cap 32) under mean_tpot_ms<=671 (3 x mean_tpot_ms at B=32 (223.7 ms)): 112.8 tok/s, 100% of the "
        "best measured", "replicas measured: 2 x cap 16 (threads=1 each): 46.8 tok/s",
        "plan: 1 x cap 32 (measured), 112.8 tok/s, +0.0% vs the best single engine"]  # as the recorded run printed
    assert f"B_opt = {result.advice.b_opt}" in (tmp_path / "t" / "report.html").read_text().replace("<b>", "")
    assert said[0].startswith("tune: searching the batch cap (1..64)") and "tune: measuring" in said[2]

    runs = ReplayRuns(RECORDED / "sweep")  # resumed: everything is measured already, so nothing runs again
    resumed = run_tune(recorded_config(tmp_path / "t", resume=True), lambda line: None, runs)
    assert runs.asked == [] and resumed.points_run == 0 and resumed.replica_record is not None
    assert json.loads(resumed.advice_path.read_text()) == written




def test_a_failed_replica_run_is_said_and_the_single_engine_plan_kept(tmp_path):
    runs = ReplayRuns(RECORDED / "sweep")
    runs.records = {k: r for k, r in runs.records.items() if r["config"]["replicas"] == 1}
    said: list[str] = []
    result = run_tune(recorded_config(tmp_path / "t"), said.append, runs)
    assert result.replica_record["status"] == "failed" and "the replica run failed" in said[-1]
    assert result.advice.replica_plan.replicas == 1 and (tmp_path / "t" / "report.html").is_file()


def test_tune_advises_without_the_roofline_when_the_search_measured_too_little(tmp_path):
    sweep = write_sweep(tmp_path / "s", [make_point(b, t, threads=1) for b, t in ((1, 60.0), (16, 150.0))])
    said = []
    advice = _advise(load_table(sweep), AdviseConfig(hardware="h100"), said.append)
    assert advice.roofline is None and advice.replica_plan.predicted_or_measured == "predicted"
    assert len(said) == 1 and "no roofline prediction" in said[0] and "3 or more batch sizes" in said[0]
