"""PointRuns that replay a recorded sweep directory: each point's run is its recorded record, no engine starts."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.repeats import runs_of
from paretoserve.results.rate_run import rate_key
from paretoserve.results.setup import ReplicaSetup
from paretoserve.results.store import SweepStore
from paretoserve.sweep.bench_runs import BenchRuns
from paretoserve.sweep.grid import SweepSpec


class ReplayRuns:
    """Answers each point with the record a real sweep kept of it, on the machine that sweep recorded; a point the
    recording lacks fails, as an engine that could not start would."""

    def __init__(self, directory: Path, served: BenchRuns | None = None) -> None:
        """`directory`: the recorded sweep; `served`: how bench runs against its served plan are answered (default:
        none is, every request fails)."""
        self.served = served or RecordedBench(None)
        stored = json.loads((directory / "sweep.json").read_text())
        self.recorded_environment = stored["environment"]
        lines = (directory / "points.jsonl").read_text().splitlines()
        self.records = {r["key"]: r for r in map(json.loads, lines)}
        self.asked: list[str] = []  # the key of every run, in order
        self.prepared = 0

    def prepare(self, spec: SweepSpec) -> None:
        self.prepared += 1

    def environment(self) -> dict:
        return self.recorded_environment

    def run(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> dict:
        self.asked.append(point.key())
        record = self.records.get(point.key())
        if record is None:
            return {"key": point.key(), "config": point.as_dict(), "status": "failed",
                    "reason": f"{point.key()} is not in the recording"}
        return {k: v for k, v in record.items() if k not in ("repeats", "repeat_summaries", "ci95")}

    def serving(self, spec: SweepSpec, point: ReplicaSetup, log_path: Path) -> contextlib.AbstractContextManager:
        """The plan, answered by `served`."""
        self.asked.append(f"serve {point.key()}")
        return serving(self.served)


class RecordedBench:
    """BenchRuns answering each run against a served plan from a recorded capacity directory: a rate run by its
    rate, the closed loop and the overload run by their keys; a run the recording lacks fails as a refused
    connection would (every request an error)."""

    def __init__(self, directory: Path | None) -> None:
        self.records = SweepStore(directory).finished_capacity() if directory else {}
        self.asked: list[str] = []  # the key of every run, in order

    def run(self, bench: BenchConfig) -> dict:
        if bench.mode == "concurrency":
            key = f"closed-c{bench.concurrency}"
        else:
            key = rate_key(bench.rate or 0.0)
            key = key if key in self.records else f"overload-{bench.rate:.4g}"
        self.asked.append(key)
        record = self.records.get(key)
        if record is None:
            n = bench.request_limit or 1
            return {"completed": 0, "failed": n, "slo_attainment": 0.0, "slo_met": False, "requests": []}
        runs = runs_of(record)  # the n-th run asked at a rate is the n-th run recorded there
        n = min(self.asked.count(key), len(runs)) - 1
        counts = record.get("slo_counts") or []  # each run's [within the SLO, sent]: its summary lacks the share
        judged = {"slo_attainment": counts[n][0] / counts[n][1]} if n < len(counts) and counts[n][1] else {}
        return {**runs[n], **judged, "requests": []}


@contextlib.contextmanager
def serving(runs: BenchRuns) -> Iterator[BenchRuns]:
    """A plan 'served' by `runs`."""
    yield runs
