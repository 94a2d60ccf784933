"""The tune loop: adaptive search sweep -> advise -> one run of the replica plan -> advise again -> the plan's
capacity and the replicas a traffic needs (when asked) -> report.

Everything lands in one directory: `sweep/` (a sweep directory, resumable), `capacity/` (the capacity runs,
resumable too), `advice.json` with the plan as Ray Serve config beside it (`ray-serve.yaml`,
`ray-serve-llm.yaml`), and `report.html` with its PNGs.
The replica run is an ordinary sweep point (`...-rN`), so `advise` and `report` see it as measured.
The points are measured by a `PointRuns` (real engines by default), so the whole loop runs in a test on
recorded points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from paretoserve.advise import Advice, AdviseConfig, SweepTable, advise_table, sweep_table
from paretoserve.advise.advice_file import ADVICE_FILE, write_advice
from paretoserve.advise.calibrated_roofline import RooflineError
from paretoserve.advise.ray_config import write_ray_configs
from paretoserve.report import ReportFiles, write_report
from paretoserve.results.store import is_finished
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.runner import PointRuns
from paretoserve.sweep.search import SearchResult
from paretoserve.sweep.session import SessionConfig, SweepSession, plan_search
from paretoserve.tune.capacity_step import run_capacity
from paretoserve.tune.config import TuneConfig
from paretoserve.tune.plan import replica_point


@dataclass
class TuneResult:
    sweep_dir: Path
    advice_path: Path
    advice: Advice
    search: SearchResult
    points_run: int  # engine configurations measured by this invocation (resumed ones not counted)
    replica_record: dict | None  # the verification run, when one was made
    table: SweepTable  # the sweep as advised
    report: ReportFiles
    wall_s: float


def run_tune(cfg: TuneConfig, say: Callable[[str], None] = print, runs: PointRuns | None = None) -> TuneResult:
    """Run the whole loop (see the module docstring), each point measured by `runs` (default: real engines);
    a UserError names the flag or step that failed."""
    started = time.perf_counter()
    spec = SweepSpec(model=cfg.model, max_batch=(cfg.max_batch,), threads=(cfg.threads,),
                     ctx_per_seq=cfg.ctx_per_seq, engine=cfg.engine, repack=cfg.repack, repeats=cfg.repeats)
    search = plan_search(spec, cfg.advice, cfg.min_gain, cfg.remeasure_budget)
    settings = {"tune": {"min_gain": cfg.min_gain, "advice": cfg.advice.model_dump(exclude={"advice_path"})}}
    session = SweepSession(SessionConfig(spec, cfg.bench, cfg.out / "sweep", cfg.resume, settings=settings,
                                         flag_names={"threads": "--threads"}), runs)
    session.open()
    say(f"tune: searching the batch cap (1..{cfg.max_batch}) of {cfg.model} with {cfg.duration_s:g} s of load "
        f"per point (up to {cfg.remeasure_budget} more runs where a doubling's gain is within the noise); "
        f"results in {cfg.out}")
    result, ran = session.search(search)
    say(f"tune: B_opt = {result.b_opt} after {len(ran)} new points (caps {', '.join(map(str, result.measured))});"
        f" {result.stop_reason or 'done'}; {result.remeasure_line(search.config.remeasure_budget)}")
    advice_cfg = cfg.advice.model_copy(update={"advice_path": str(cfg.out / ADVICE_FILE)})
    sweep = session.sweep()
    table = sweep_table(sweep)
    advice = _advise(table, advice_cfg, say)
    replica_record = None
    point = replica_point(advice, table.cores, cfg.advice.max_replicas) if cfg.verify else None
    if point is not None:
        replica_record = session.store.finished().get(point.key())
        if replica_record is None or replica_record.get("repeats", 1) < spec.repeats:
            say(f"tune: measuring {point.replicas} replicas x cap {point.max_batch} "
                f"(threads={point.threads} each) next to 1 x cap {advice.b_opt_max_batch}")
            replica_record = session.run([point])[0]
            ran.append(replica_record)
            sweep = session.sweep()
            table = sweep_table(sweep)
            advice = _advise(table, advice_cfg, say)
        if not is_finished(replica_record):
            say(f"tune: the replica run failed: {replica_record.get('reason', '')[:300]}")
    if cfg.capacity is not None:
        plan_record = session.store.finished().get(advice.replica_plan.setup().key())
        capacity = run_capacity(cfg.capacity, cfg, spec, advice, plan_record, session.runs, say)
        advice = advice.model_copy(update={"capacity": capacity})
        say(f"tune: {capacity.summary}")
        for line in capacity.arithmetic:
            say(f"tune:   {line}")
    session.export_csv()
    advice_path = write_advice(advice, cfg.out / ADVICE_FILE)
    write_ray_configs(advice, table, cfg.out)
    report = write_report(sweep, cfg.out / "report.html", advice=advice)
    return TuneResult(session.store.dir, advice_path, advice, result, len(ran), replica_record, table, report,
                      time.perf_counter() - started)


def _advise(table: SweepTable, config: AdviseConfig, say: Callable[[str], None]) -> Advice:
    """advise; when the search measured too little to calibrate the roofline (--hardware), say so and advise
    without it rather than lose the run."""
    try:
        return advise_table(table, config)
    except RooflineError as exc:
        say(f"tune: no roofline prediction: {exc}; a predicted plan is the upper bound")
        return advise_table(table, config.model_copy(update={"hardware": None}))
