"""The tune loop: adaptive search sweep -> advise -> one run of the replica plan -> advise again -> report.

Everything lands in one directory: `sweep/` (a sweep directory, resumable), `advice.json` with the plan
as Ray Serve config beside it (`ray-serve.yaml`, `ray-serve-llm.yaml`), and `report.html` with its PNGs.
The replica run is an ordinary sweep point (`...-rN`), so `advise` and `report` see it as measured.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from paretoserve.advise import Advice, AdviseConfig, AdviseError, advise_table, load_table
from paretoserve.advise.ray_config import write_ray_configs
from paretoserve.advise.roofline import RooflineError
from paretoserve.engine_process import LaunchError
from paretoserve.engines import preset
from paretoserve.estimate.plans import RooflineConfig
from paretoserve.model import ModelError
from paretoserve.report import ReportError, ReportFiles, write_report
from paretoserve.results.store import StoreError, SweepStore
from paretoserve.sweep.environment import collect_environment
from paretoserve.sweep.grid import SweepSpec, SweepSpecError
from paretoserve.sweep.guess import sweep_guess
from paretoserve.sweep.measure import bench_measure
from paretoserve.sweep.runner import run_points, run_search
from paretoserve.sweep.search import SearchConfig, SearchResult
from paretoserve.tune.config import TuneConfig, TuneError
from paretoserve.tune.plan import replica_point


@dataclass
class TuneResult:
    sweep_dir: Path
    advice_path: Path
    advice: Advice
    search: SearchResult
    points_run: int  # engine configurations measured by this invocation (resumed ones not counted)
    replica_record: dict | None  # the verification run, when one was made
    report: ReportFiles
    wall_s: float


def run_tune(cfg: TuneConfig, say: Callable[[str], None] = print) -> TuneResult:
    """Run the whole loop (see the module docstring); raises TuneError naming the flag or step that failed."""
    started = time.perf_counter()
    try:
        preset(cfg.engine).check()  # an engine that is not installed is one line before anything runs
        preset(cfg.engine).prepare(cfg.model, None)  # build or export the model once, before the first start
        spec = SweepSpec(model=cfg.model, max_batch=(cfg.max_batch,), threads=(cfg.threads,),
                         ctx_per_seq=cfg.ctx_per_seq, engine=cfg.engine, repack=cfg.repack, repeats=cfg.repeats)
    except (ModelError, SweepSpecError) as exc:
        raise TuneError(str(exc)) from exc
    store = SweepStore(cfg.out / "sweep")
    bench = cfg.bench()
    record = {**spec.as_dict(), "workload": {k: str(v) for k, v in dataclasses.asdict(bench).items()
                                             if k not in ("url", "engine_pids")},
              "tune": {"min_gain": cfg.min_gain, "advice": cfg.advice.model_dump(exclude={"advice_path"})}}
    try:
        store.open(record, collect_environment(), cfg.resume, flag_names={"threads": "--threads"})
    except StoreError as exc:
        raise TuneError(str(exc).replace("--out", "--out of tune")) from exc
    measure = bench_measure(bench, saturate=True)

    say(f"tune: searching the batch cap (1..{cfg.max_batch}) of {cfg.model} with {cfg.duration_s:g} s of load "
        f"per point (up to {cfg.remeasure_budget} more runs where a doubling's gain is within the noise); "
        f"results in {cfg.out}")
    search = SearchConfig(candidates=tuple(range(1, cfg.max_batch + 1)), min_gain=cfg.min_gain,
                          remeasure_budget=cfg.remeasure_budget)
    advice_cfg = cfg.advice.model_copy(update={"advice_path": str(cfg.out / "advice.json")})
    try:
        guess = sweep_guess(spec.as_dict(), search.candidates, search.min_gain,
                            RooflineConfig(cfg.advice.hardware, cfg.advice.model_geometry)) \
            if cfg.advice.hardware else None
    except ValueError as exc:  # the message names --hardware or --model-geometry
        raise TuneError(str(exc)) from exc
    try:
        result, ran = run_search(spec, search, cfg.advice, measure, store, guess)
        say(f"tune: B_opt = {result.b_opt} after {len(ran)} new points (caps {', '.join(map(str, result.measured))});"
            f" {result.stop_reason or 'done'}; {result.remeasure_line(search.remeasure_budget)}")
        advice = _advise(store.dir, advice_cfg, say)
        replica_record = None
        point = replica_point(advice, cfg.cores, cfg.advice.max_replicas) if cfg.verify else None
        if point is not None:
            replica_record = store.finished().get(point.key())
            if replica_record is None or replica_record.get("repeats", 1) < spec.repeats:
                say(f"tune: measuring {point.replicas} replicas x cap {point.max_batch} "
                    f"(threads={point.threads} each) next to 1 x cap {advice.b_opt_max_batch}")
                replica_record = run_points(spec, [point], measure, store)[0]
                ran.append(replica_record)
            if replica_record["status"] != "ok":
                say(f"tune: the replica run failed: {replica_record.get('reason', '')[:300]}")
            advice = _advise(store.dir, advice_cfg, say)
    except (AdviseError, LaunchError) as exc:
        raise TuneError(str(exc)) from exc
    store.export_csv(store.dir / "points.csv")
    advice_path = cfg.out / "advice.json"
    advice_path.write_text(json.dumps(advice.model_dump(), indent=2))
    write_ray_configs(advice, load_table(store.dir), cfg.out)
    try:
        report = write_report(store.dir, cfg.out / "report.html", advice=advice)
    except ReportError as exc:
        raise TuneError(str(exc)) from exc
    return TuneResult(store.dir, advice_path, advice, result, len(ran), replica_record, report,
                      time.perf_counter() - started)


def _advise(sweep_dir: Path, config: AdviseConfig, say: Callable[[str], None]) -> Advice:
    """advise; when the search measured too little to calibrate the roofline (--hardware), say so and advise
    without it rather than lose the run."""
    table = load_table(sweep_dir)
    try:
        return advise_table(table, config)
    except RooflineError as exc:
        say(f"tune: no roofline prediction: {exc}; a predicted plan is the upper bound")
        return advise_table(table, config.model_copy(update={"hardware": None}))
