"""Run a sweep's points in order: repeats round by round, each run recorded once it is complete, so an
interrupted sweep resumes where it stopped; and the BCA search driven point by point."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, ContextManager, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from paretoserve.advise import AdviseConfig
from paretoserve.bench.repeats import combine, runs_of
from paretoserve.results.point import Point, to_point
from paretoserve.results.setup import ReplicaSetup
from paretoserve.results.store import SweepStore, is_finished
from paretoserve.sweep.asked import drive
from paretoserve.sweep.bench_runs import BenchRuns
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.search import Guess, SearchConfig, SearchError, SearchResult, bca_search


class PointRuns(Protocol):
    """How a sweep gets a point measured: real engines (sweep/engine_runs.py), or a replay of recorded points."""

    def prepare(self, spec: SweepSpec) -> None:
        """Whatever must hold before the first point: the engine installed, its model built."""

    def environment(self) -> dict:
        """The machine the points are measured on, as sweep.json keeps it (sweep/environment.py)."""

    def run(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> dict:
        """One run of `point`: a points.jsonl record, status 'ok' with its figures or 'failed' with a reason."""

    def serving(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> ContextManager[BenchRuns]:
        """`point` served until the block ends (LaunchError when it cannot start), and how bench runs reach it."""


def run_points(spec: SweepSpec, points: list[ReplicaSetup], runs: PointRuns, store: SweepStore,
               on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Measure each point `spec.repeats` times, round by round (A B A B: drift on the machine hits every point
    alike; each run starts its engine afresh), with a progress bar and ETA over runs. After each run the
    point's record, combined over its runs so far (bench/repeats.py), is appended; runs a resumed sweep
    already holds are not made again. A failed run ends its point. Returns the last record of each point
    run now."""
    finished = store.finished()
    held = {p.key(): runs_of(finished[p.key()]) for p in points if p.key() in finished}
    records: dict[str, dict] = {}
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    done = sum(min(len(r), spec.repeats) for r in held.values())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("", total=len(points) * spec.repeats, completed=done)
        for round_ in range(spec.repeats):
            for point in points:
                key = point.key()
                if len(held.get(key, ())) > round_ or (key in records and not is_finished(records[key])):
                    continue
                progress.update(task, description=key if spec.repeats == 1 else f"{key} ({round_ + 1}/{spec.repeats})")
                record = runs.run(spec, point, store.logs_dir / f"{key}.log")
                if is_finished(record):
                    held.setdefault(key, []).append(record)
                    record = combine(held[key])
                store.append(record)
                records[key] = record
                if on_record is not None:
                    on_record(record)
                progress.advance(task)
    return list(records.values())


def run_search(spec: SweepSpec, search: SearchConfig, advice: AdviseConfig, runs: PointRuns, store: SweepStore,
               guess: Guess | None = None) -> tuple[SearchResult, list[dict]]:
    """Run `sweep --search bca` over the batch cap (one KV, threads and replicas value), recording each point;
    points already finished in `store` are reused; `guess` is the roofline's jump ahead (sweep/guess.py).
    Returns the result and the records of the points run now.

    Raises AdviseError when no batch meets the SLO, SearchError when a point fails (the search cannot go on).
    """
    done = store.finished()
    ran: dict[str, dict] = {}  # the latest record of each point run now

    def measure_cap(cap: int, extra: int) -> Point:
        point = ReplicaSetup(cap, spec.kv_tokens[0], spec.threads[0], spec.replicas[0])
        record, repeats = done.get(point.key()), spec.repeats + extra
        if record is None or record.get("repeats", 1) < repeats:  # its repeats run back to back
            record = run_points(dataclasses.replace(spec, repeats=repeats), [point], runs, store)[0]
            done[point.key()] = ran[point.key()] = record
            if not is_finished(record):
                raise SearchError(f"point {point.key()} failed, so the search cannot go on: "
                                  f"{record.get('reason', '')[:300]}")
        return to_point(record)

    return drive(bca_search(search, advice, guess), measure_cap), list(ran.values())
