"""Run a sweep point by point: start the engine, wait for health, measure, stop, record.

The engine is stopped in every case (a finished point, a failed point, Ctrl-C, SIGTERM), and a
point is recorded only once it is complete, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from paretoserve.launch import EngineProcess, LaunchError, free_port
from paretoserve.sweep.grid import PointConfig, SweepSpec
from paretoserve.sweep.store import SweepStore

# (point, base_url, engine pids) -> summary fields of one workload run against that endpoint.
Measure = Callable[[PointConfig, str, tuple[int, ...]], dict]


def run_point(spec: SweepSpec, point: PointConfig, measure: Measure, store: SweepStore) -> dict:
    """Measure one configuration; a failure becomes a record with status 'failed' and its reason."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    record = {"key": point.key(), "config": point.as_dict(), "started_at": time.time()}
    started = time.perf_counter()
    engine = EngineProcess(spec.command(point, port), base_url, spec.health_path,
                           log_path=store.logs_dir / f"{point.key()}.log")
    try:
        with engine:
            engine.wait_healthy(spec.health_timeout_s)
            summary = measure(point, base_url, (engine.proc.pid,))
            if engine.proc.poll() is not None:
                raise LaunchError(f"engine exited with status {engine.proc.returncode} during the run:\n"
                                  f"{engine.output_tail(1500)}")
        record.update(status="ok", **summary)
    except LaunchError as exc:
        record.update(status="failed", reason=str(exc))
    except (OSError, ValueError, RuntimeError) as exc:  # the workload itself could not run
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    record["wall_s"] = time.perf_counter() - started
    return record


def run_points(spec: SweepSpec, points: Iterable[PointConfig], measure: Measure, store: SweepStore,
               total: int, done: int = 0, on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Run and record each point in turn, with a progress bar and ETA over points."""
    records = []
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("", total=total, completed=done)
        for point in points:
            progress.update(task, description=point.key())
            record = run_point(spec, point, measure, store)
            store.append(record)
            records.append(record)
            if on_record is not None:
                on_record(record)
            progress.advance(task)
    return records
