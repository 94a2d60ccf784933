"""PointRuns that replay a recorded sweep directory: each point's run is its recorded record, no engine starts."""

from __future__ import annotations

import json
from pathlib import Path

from paretoserve.results.setup import ReplicaSetup
from paretoserve.sweep.grid import SweepSpec


class ReplayRuns:
    """Answers each point with the record a real sweep kept of it, on the machine that sweep recorded; a point the
    recording lacks fails, as an engine that could not start would."""

    def __init__(self, directory: Path) -> None:
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
