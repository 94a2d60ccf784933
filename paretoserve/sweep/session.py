"""One sweep session, what `sweep` and `tune` both run: check and prepare the engine, create or take up the sweep
directory, run the grid or the BCA search point by point, export the CSV.

The points are measured by a `PointRuns` (sweep/runner.py): real engines by default, a replay of recorded
points in tests, so the whole session runs without an engine.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.advise import AdviseConfig
from paretoserve.bench.config import BenchConfig
from paretoserve.bench.trace import trace_digest
from paretoserve.estimate.plans import RooflineConfig
from paretoserve.results.setup import ReplicaSetup
from paretoserve.results.store import SweepStore
from paretoserve.results.sweep import Sweep, read_sweep
from paretoserve.sweep.engine_runs import EngineRuns, bench_workload
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.guess import sweep_guess
from paretoserve.sweep.runner import PointRuns, run_points, run_search
from paretoserve.sweep.search import Guess, SearchConfig, SearchError, SearchResult

POINT_URL = "http://127.0.0.1:1"  # the workload's --url while it is checked; each point runs at its engine's address


@dataclass(frozen=True)
class SearchPlan:
    """`--search bca`: how the search moves, the SLO and floor it judges by, the roofline's jump ahead."""

    config: SearchConfig
    advice: AdviseConfig
    guess: Guess | None = None


def plan_search(spec: SweepSpec, advice: AdviseConfig, min_gain: float, remeasure_budget: int,
                calibrate: str | None = None) -> SearchPlan:
    """The search over every cap up to the largest of `spec.max_batch`; with `advice.hardware`, the roofline's
    guess, fitted to the earlier sweep `calibrate` when given. Checked before anything is created or started;
    a UserError names the flag."""
    try:
        config = SearchConfig(candidates=tuple(range(1, max(spec.max_batch) + 1)), min_gain=min_gain,
                              remeasure_budget=remeasure_budget)
    except SearchError as exc:
        raise SearchError(f"--search bca: {exc}") from exc
    if advice.hardware is None:
        return SearchPlan(config, advice)
    guess = sweep_guess(spec.as_dict(), config.candidates, config.min_gain,
                        RooflineConfig(advice.hardware, advice.model_geometry), calibrate)
    return SearchPlan(config, advice, guess)


def workload_record(bench: BenchConfig) -> dict:
    """The workload as sweep.json keeps it: every bench setting as text, and a trace's digest, so that --resume
    refuses other settings or an edited trace."""
    record = {k: str(v) for k, v in dataclasses.asdict(bench).items() if k not in ("url", "engine_pids", "access")}
    if bench.trace_path is not None:
        record["trace_sha256"] = trace_digest(Path(bench.trace_path).expanduser())
    return record


@dataclass(frozen=True)
class SessionConfig:
    """One sweep: its grid, the workload of every point, where it is kept."""

    spec: SweepSpec
    bench: BenchConfig
    out: Path  # the sweep directory
    resume: bool = False
    saturate: bool = True  # closed loop: the concurrency of each point is its cap x replicas
    settings: dict = field(default_factory=dict)  # what sweep.json keeps beside the spec and workload
    flag_names: dict[str, str] = field(default_factory=dict)  # a setting's flag where its key does not say it


class SweepSession:
    """A sweep directory being measured; `open` it first."""

    def __init__(self, config: SessionConfig, runs: PointRuns | None = None) -> None:
        self.config = config
        if runs is None:  # engines of this session answer only this session's requests
            key = secrets.token_urlsafe(32)
            runs = EngineRuns(bench_workload(config.bench, config.saturate, key), api_key=key)
        self.runs = runs
        self.store = SweepStore(config.out)

    @property
    def spec(self) -> SweepSpec:
        return self.config.spec

    def open(self) -> None:
        """Prepare the engine, then create the sweep directory or take up the one to resume (StoreError when it
        holds another sweep)."""
        self.runs.prepare(self.spec)
        record = {**self.spec.as_dict(), "workload": workload_record(self.config.bench), **self.config.settings}
        self.store.open(record, self.runs.environment(), self.config.resume, flag_names=self.config.flag_names)

    def todo(self) -> list[ReplicaSetup]:
        """The grid's points that do not yet have every repeat."""
        finished = self.store.finished()
        return [p for p in self.spec.points()
                if p.key() not in finished or finished[p.key()].get("repeats", 1) < self.spec.repeats]

    def run(self, points: list[ReplicaSetup]) -> list[dict]:
        """Measure `points` (runs already held are not made again); the record of each point run now."""
        return run_points(self.spec, points, self.runs, self.store)

    def search(self, plan: SearchPlan) -> tuple[SearchResult, list[dict]]:
        """The BCA search; AdviseError when no batch meets the SLO, SearchError when a point fails."""
        return run_search(self.spec, plan.config, plan.advice, self.runs, self.store, plan.guess)

    def export_csv(self) -> Path:
        return self.store.export_csv(self.store.dir / "points.csv")

    def sweep(self) -> Sweep:
        """What the directory holds now, without reading its points again."""
        return read_sweep(self.store)
