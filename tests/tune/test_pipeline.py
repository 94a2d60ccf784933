from paretoserve.advise import AdviseConfig
from paretoserve.tune.pipeline import _advise
from tests.report.sweeps import make_point, write_sweep


def test_tune_advises_without_the_roofline_when_the_search_measured_too_little(tmp_path):
    sweep = write_sweep(tmp_path / "s", [make_point(b, t, threads=1) for b, t in ((1, 60.0), (16, 150.0))])
    said = []
    advice = _advise(sweep, AdviseConfig(hardware="h100"), said.append)
    assert advice.roofline is None and advice.replica_plan.predicted_or_measured == "predicted"
    assert len(said) == 1 and "no roofline prediction" in said[0] and "3 or more batch sizes" in said[0]
