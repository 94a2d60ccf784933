"""`sweep --search bca` replayed on the paper's recorded grids: same B_opt as the full grid, at most half the runs."""

import pytest

from paretoserve.advise import AdviseConfig, advise, load_table
from paretoserve.advise.table import AdviseError, Point
from paretoserve.estimate.plans import RooflineConfig
from paretoserve.results.sweep import read_sweep
from paretoserve.sweep.asked import drive
from paretoserve.sweep.guess import sweep_guess
from paretoserve.sweep.search import SearchConfig, bca_search

RULES = {
    "opt-1.3b": AdviseConfig(slo_multiple=3, slo_metric="tpot"),
    "opt-2.7b": AdviseConfig(slo_multiple=3, slo_metric="tpot"),
    "llama-2-7b": AdviseConfig(slo_multiple=3, slo_metric="tpot"),
    "llama-2-13b": AdviseConfig(slo_multiple=3, slo_metric="tpot"),
    "background": AdviseConfig(slo_multiple=5, slo_metric="itl", min_efficiency=0.2),
}


def replay(sweep_dir, config: AdviseConfig, guess=None):
    """The search run against recorded points: each cap it asks for is looked up instead of measured."""
    by_cap = {p.max_batch: p for p in load_table(sweep_dir).singles()}
    search = bca_search(SearchConfig(candidates=tuple(sorted(by_cap))), config, guess)
    return drive(search, lambda cap, extra: by_cap[cap]), len(by_cap)


@pytest.mark.parametrize("name", list(RULES))
def test_search_finds_the_grid_b_opt_with_at_most_half_the_points(paper_sweeps, name):
    full = advise(paper_sweeps[name], RULES[name].model_copy(update={"device_memory": "64GiB"}))
    result, grid = replay(paper_sweeps[name], RULES[name])
    assert result.b_opt == full.b_opt
    assert len(result.measured) <= grid / 2


def test_search_points_on_the_paper_data(paper_sweeps):
    runs = {name: replay(paper_sweeps[name], rule)[0].measured for name, rule in RULES.items()}
    assert runs == {"opt-1.3b": [32, 64, 128, 256], "opt-2.7b": [32, 64, 128, 256], "llama-2-7b": [32, 64, 128, 256],
                    "llama-2-13b": [32, 64, 128, 256],  # 256 adds -1 %: the plateau ends the climb
                    "background": [1, 32, 64, 128, 96]}  # 128 is under the efficiency floor: bisect to 96


def point(cap, throughput, tpot):
    return Point(key=str(cap), max_batch=cap, batch=cap, output_throughput=throughput,
                 total_token_throughput=throughput, request_throughput=1.0, latency_ms={"mean_tpot_ms": tpot})


def test_halves_when_the_start_breaks_the_slo_then_bisects():
    # TPOT = cap ms, limit 20 ms: the start (32) fails, 16 meets, then bisection between 16 and 32 lands on 20
    curve = {c: point(c, 10.0 * c, float(c)) for c in range(1, 65)}
    result = drive(bca_search(SearchConfig(candidates=tuple(range(1, 65))), AdviseConfig(slo="tpot_ms<=20")),
                   lambda cap, extra: curve[cap])
    assert result.b_opt == 20
    assert result.measured[:2] == [32, 16] and len(result.measured) <= 7


def test_no_cap_meets_the_slo():
    curve = {c: point(c, 10.0 * c, 100.0) for c in (1, 2, 4)}
    with pytest.raises(AdviseError, match="no batch meets"):
        drive(bca_search(SearchConfig(candidates=(1, 2, 4)), AdviseConfig(slo="tpot_ms<=20")),
              lambda c, extra: curve[c])


def test_sweep_search_flags_are_checked_before_any_engine_starts(tmp_path, capsys):
    from paretoserve.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "--search", "bca", "--threads-per-replica", "1,2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--search bca searches the batch cap only" in err and len(err.strip().splitlines()) == 1
    assert main(["sweep", "--search", "bca", "--min-gain", "-1", "--out", str(tmp_path / "t")]) == 2
    assert "--min-gain must be >= 0" in capsys.readouterr().err
    for argv, needle in ((["--hardware", "h100"], "--hardware guides --search bca; a grid sweep runs every point"),
                         (["--search", "bca", "--calibrate", "x"], "--calibrate needs --hardware"),
                         (["--search", "bca", "--hardware", "h100", "--engine-cmd", "srv --port {port}"],
                          "--model-geometry: this sweep does not name a model file"),
                         (["--search", "bca", "--hardware", "h100", "--calibrate", str(tmp_path / "none")],
                          f"--calibrate {tmp_path / 'none'}: cannot fit the roofline to it: "
                          f"{tmp_path / 'none'}: no points.jsonl")):
        assert main(["sweep", *argv, "--out", str(tmp_path / "u")]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "u").exists()  # nothing created before the flags were checked


def test_roofline_guess_calibrated_on_another_model_saves_runs(paper_sweeps):
    """The roofline fitted to OPT-2.7B's background sweep (same H100 and vLLM) guides the searches of all four
    models: the same B_opt as the full grid, with 13 runs instead of 16."""
    runs = {}
    for name in ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b"):
        caps = tuple(p.max_batch for p in load_table(paper_sweeps[name]).singles())
        guess = sweep_guess(read_sweep(paper_sweeps[name]).spec, caps, 0.1, RooflineConfig("h100-64gb"),
                            calibrate_dir=str(paper_sweeps["background-2.7b"]))
        result, _ = replay(paper_sweeps[name], RULES[name], guess)
        assert result.b_opt == advise(paper_sweeps[name], RULES[name]).b_opt
        runs[name] = result.measured
    assert runs == {"opt-1.3b": [32, 128, 256], "opt-2.7b": [32, 128, 256], "llama-2-7b": [32, 128, 256],
                    "llama-2-13b": [32, 64, 128, 256]}  # 64 sequences of 13B overflow the KV by the roofline


def test_a_guess_beyond_the_slo_is_bisected_down():
    # TPOT = cap ms, limit 3 x TPOT(32) = 96 ms; the guess 512 fails, so the search bisects between 32 and 512
    curve = {c: point(c, 10.0 * c, float(c)) for c in range(1, 1025)}
    result = drive(bca_search(SearchConfig(candidates=tuple(range(1, 1025))), AdviseConfig(),
                              lambda first, limits: 512), lambda cap, extra: curve[cap])
    assert result.b_opt == 96 and result.guess == 512
    assert result.measured[:2] == [32, 512] and len(result.measured) <= 10


def test_a_guess_at_the_next_doubling_is_not_a_jump():
    curve = {c: point(c, 10.0 * c, float(c)) for c in range(1, 65)}
    result = drive(bca_search(SearchConfig(candidates=tuple(range(1, 65))), AdviseConfig(slo="tpot_ms<=100"),
                              lambda first, limits: 64), lambda cap, extra: curve[cap])
    assert result.guess is None and result.measured == [32, 64]


def noisy(cap, runs):
    """A point measured `runs` times: throughput 100 at cap 32 and 108 at 64 (+8 %, near --min-gain 10 %), its
    95 % interval ±20 / runs once there are two runs or more."""
    mean = 100.0 if cap == 32 else 108.0
    half = 20.0 / runs
    p = point(cap, mean, float(cap) / 32)
    return p.model_copy(update={"ci95": {} if runs == 1 else {"output_throughput": (mean - half, mean + half)}})


def test_a_gain_within_the_noise_is_measured_again_within_the_budget():
    asks = []

    def measure(cap, extra):
        asks.append((cap, extra))
        return noisy(cap, 1 + extra)

    search = SearchConfig(candidates=tuple(range(1, 129)), min_gain=0.1, remeasure_budget=4)
    result = drive(bca_search(search, AdviseConfig(slo="tpot_ms<=100")), measure)
    # one run each: +8 % lies within 10 % of --min-gain, so both are run again (A B), then the intervals
    # (±10 around 100 and 108) still hold 10 %, so once more; the budget of 4 is then spent
    assert asks == [(32, 0), (64, 0), (32, 1), (64, 1), (32, 2), (64, 2)]
    assert result.remeasure_runs == 4 and len(result.remeasured) == 2
    assert "from one run each" in result.remeasured[0] and "95 % interval" in result.remeasured[1]
    assert result.stop_reason.startswith("plateau: doubling to 64 added +8.0%")
    assert result.remeasure_line(4).endswith("(4 of 4 re-measure runs)")


def test_a_gain_clear_of_the_noise_or_no_budget_measures_nothing_again():
    curve = {c: point(c, 10.0 * c, 1.0) for c in range(1, 129)}  # doubling always adds 100 %
    result = drive(bca_search(SearchConfig(candidates=tuple(range(1, 129))), AdviseConfig(slo="tpot_ms<=100")),
                   lambda cap, extra: curve[cap])
    assert result.remeasure_runs == 0 and result.remeasure_line(4) == "0 of 4 re-measure runs"
    search = SearchConfig(candidates=tuple(range(1, 129)), remeasure_budget=0)
    result = drive(bca_search(search, AdviseConfig(slo="tpot_ms<=100")), lambda cap, extra: noisy(cap, 1 + extra))
    assert result.remeasure_runs == 0 and result.measured == [32, 64]
    with pytest.raises(ValueError, match=r"--remeasure-budget must be an integer in \[0, 100\]"):
        SearchConfig(candidates=(1,), remeasure_budget=-1)
