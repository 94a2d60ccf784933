"""A sweep session on recorded points (tests/data/embedded-sweep): grid, search, resume and export, no engine."""

from pathlib import Path

import pytest

from paretoserve.advise import AdviseConfig, advise_table, sweep_table
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.results.store import StoreError
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.search import SearchConfig, SearchError
from paretoserve.sweep.session import POINT_URL, SearchPlan, SessionConfig, SweepSession, plan_search
from tests.fakes.replay import ReplayRuns

RECORDED = Path(__file__).parents[1] / "data" / "embedded-sweep"
SPEC = SweepSpec(max_batch=(1, 2, 4, 8), threads=(1,), ctx_per_seq=33)  # as recorded (its README)
BENCH = BenchConfig(url=POINT_URL, input_tokens=TokenRange(16, 16), output_tokens=TokenRange(16, 16), requests=8)


def session(out: Path, resume: bool = False, **changes) -> SweepSession:
    opened = SweepSession(SessionConfig(SPEC, BENCH, out, resume, **changes), ReplayRuns(RECORDED))
    opened.open()
    return opened


def test_a_grid_runs_every_point_once_and_a_resume_runs_none(tmp_path):
    grid = session(tmp_path / "s")
    assert grid.todo() == SPEC.points()
    records = grid.run(grid.todo())
    assert [r["key"] for r in records] == grid.runs.asked == [p.key() for p in SPEC.points()]
    assert grid.export_csv().read_text().count("\n") == 1 + len(records)
    assert len(grid.sweep().records) == 4 and grid.sweep().environment == grid.runs.recorded_environment
    resumed = session(tmp_path / "s", resume=True)
    assert resumed.todo() == [] and resumed.run(resumed.todo()) == [] and resumed.runs.asked == []


def test_other_settings_are_refused_on_resume_naming_the_flag(tmp_path):
    session(tmp_path / "s", settings={"search": {"min_gain": 0.1}})
    with pytest.raises(StoreError, match="--min-gain was 0.1, now 0.2"):
        session(tmp_path / "s", resume=True, settings={"search": {"min_gain": 0.2}})


def test_the_search_picks_what_the_advisor_picks_from_the_whole_grid(tmp_path):
    advice = AdviseConfig(slo="tpot_ms<=150")
    grid = session(tmp_path / "grid")
    grid.run(grid.todo())
    search = session(tmp_path / "search", settings={"search": {"min_gain": 0.1}})
    caps = SearchConfig(candidates=SPEC.max_batch, min_gain=0.1, remeasure_budget=0)  # the caps recorded
    result, ran = search.search(SearchPlan(caps, advice))
    assert result.b_opt == advise_table(sweep_table(grid.sweep()), advice).b_opt == 4  # B=8 breaks 150 ms
    assert [r["key"] for r in ran] == search.runs.asked == ["b8-kvdefault-t1-r1", "b4-kvdefault-t1-r1"]


def test_a_failed_point_ends_the_search_naming_it(tmp_path):
    plan = plan_search(SPEC, AdviseConfig(slo="tpot_ms<=150"), min_gain=0.1, remeasure_budget=0)
    assert plan.config.candidates == tuple(range(1, 9))  # every cap up to the largest --max-batch
    with pytest.raises(SearchError, match="point b6-kvdefault-t1-r1 failed, so the search cannot go on: b6-kv"):
        session(tmp_path / "s").search(plan)  # bisecting 4..8 asks for 6, which the recording lacks


def test_search_settings_out_of_range_name_the_flag():
    with pytest.raises(SearchError, match="--search bca: --remeasure-budget must be an integer in"):
        plan_search(SPEC, AdviseConfig(), min_gain=0.1, remeasure_budget=101)
