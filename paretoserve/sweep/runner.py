"""Run a sweep point by point: start the engine, wait for health, measure, stop, record.

The engine is stopped in every case (a finished point, a failed point, Ctrl-C, SIGTERM), and a
point is recorded only once it is complete, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from paretoserve.advise import AdviseConfig
from paretoserve.bench.repeats import combine, runs_of
from paretoserve.engine_process import EngineProcess, LaunchError, describe_exit, free_port
from paretoserve.results.point import Point, to_point
from paretoserve.results.store import SweepStore
from paretoserve.serve.replica_server import ReplicaServer
from paretoserve.sweep.grid import PointConfig, SweepSpec
from paretoserve.sweep.search import Guess, SearchConfig, SearchResult, bca_search, drive

# (point, base_url, engine pids) -> summary fields of one workload run against that endpoint.
Measure = Callable[[PointConfig, str, tuple[int, ...]], dict]


def run_point(spec: SweepSpec, point: PointConfig, measure: Measure, store: SweepStore) -> dict:
    """Measure one configuration; a failure becomes a record with status 'failed' and its reason.

    One replica is measured straight at its engine; several through `paretoserve serve`'s router,
    as they would be served; with the ray backend every point through Ray Serve's proxy.
    """
    record = {"key": point.key(), "config": point.as_dict(), "started_at": time.time()}
    started = time.perf_counter()
    log_path = store.logs_dir / f"{point.key()}.log"
    try:
        with _start(spec, point, log_path) as engines:
            engines.wait_healthy(spec.health_timeout_s)
            summary = measure(point, engines.base_url, engines.pids)
            if (status := engines.exit_status()) is not None:
                raise LaunchError(f"the engine {describe_exit(status)} during the run:\n"
                                  f"{engines.output_tail(1500)}")
            if engines.restarts():
                raise LaunchError(f"a replica failed and was restarted during the run, so the figures mix "
                                  f"in a restart:\n{engines.output_tail(1500)}")
        record.update(status="ok", **summary)
    except LaunchError as exc:
        record.update(status="failed", reason=str(exc))
    except (OSError, ValueError, RuntimeError) as exc:  # the workload itself could not run
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    record["wall_s"] = time.perf_counter() - started
    return record


def _start(spec: SweepSpec, point: PointConfig, log_path: Path) -> EngineProcess | ReplicaServer:
    if point.replicas > 1 or spec.backend == "ray":
        return ReplicaServer(spec.plan(point), log_path=log_path, log_dir=log_path.parent / point.key(),
                             backend=spec.backend)
    port, plan = free_port(), spec.plan(point)
    return EngineProcess(plan.command(0, port, point.threads), f"http://127.0.0.1:{port}", spec.health_path,
                         log_path=log_path, env=plan.env)


def run_points(spec: SweepSpec, points: list[PointConfig], measure: Measure, store: SweepStore,
               on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Measure each point `spec.repeats` times, round by round (A B A B: drift on the machine hits every point
    alike; each run starts its engine afresh), with a progress bar and ETA over runs. After each run the
    point's record, combined over its runs so far (bench/repeats.py), is appended; runs a resumed sweep
    already holds are not made again. A failed run ends its point. Returns the last record of each point
    run now."""
    finished = store.finished()
    runs = {p.key(): runs_of(finished[p.key()]) for p in points if p.key() in finished}
    records: dict[str, dict] = {}
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    done = sum(min(len(r), spec.repeats) for r in runs.values())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("", total=len(points) * spec.repeats, completed=done)
        for round_ in range(spec.repeats):
            for point in points:
                key = point.key()
                if len(runs.get(key, ())) > round_ or records.get(key, {}).get("status") == "failed":
                    continue
                progress.update(task, description=key if spec.repeats == 1 else f"{key} ({round_ + 1}/{spec.repeats})")
                record = run_point(spec, point, measure, store)
                if record["status"] == "ok":
                    runs.setdefault(key, []).append(record)
                    record = combine(runs[key])
                store.append(record)
                records[key] = record
                if on_record is not None:
                    on_record(record)
                progress.advance(task)
    return list(records.values())


def run_search(spec: SweepSpec, search: SearchConfig, advice: AdviseConfig, measure: Measure, store: SweepStore,
               guess: Guess | None = None) -> tuple[SearchResult, list[dict]]:
    """Run `sweep --search bca` over the batch cap (one KV, threads and replicas value), recording each point;
    points already finished in `store` are reused; `guess` is the roofline's jump ahead (sweep/guess.py).
    Returns the result and the records of the points run now.

    Raises AdviseError when no batch meets the SLO, LaunchError when a point fails (the search cannot go on).
    """
    done = store.finished()
    ran: dict[str, dict] = {}  # the latest record of each point run now

    def measure_cap(cap: int, extra: int) -> Point:
        point = PointConfig(cap, spec.kv_tokens[0], spec.threads[0], spec.replicas[0])
        record, runs = done.get(point.key()), spec.repeats + extra
        if record is None or record.get("repeats", 1) < runs:  # its repeats run back to back
            record = run_points(dataclasses.replace(spec, repeats=runs), [point], measure, store)[0]
            done[point.key()] = ran[point.key()] = record
            if record["status"] != "ok":
                raise LaunchError(f"point {point.key()} failed, so the search cannot go on: "
                                  f"{record.get('reason', '')[:300]}")
        return to_point(record)

    return drive(bca_search(search, advice, guess), measure_cap), list(ran.values())
