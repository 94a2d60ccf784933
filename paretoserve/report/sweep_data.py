"""A sweep read for the report: its points (results.Point) grouped into series over the batch cap."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.limits import UserError
from paretoserve.results.point import Point
from paretoserve.results.store import StoreError
from paretoserve.results.sweep import Sweep, read_sweep


class ReportError(UserError):
    """The report cannot be made from what it was given; the message names the input and what is allowed."""


@dataclass(frozen=True)
class Series:
    """Points that differ only in their batch cap, sorted by it: one line on a 'vs batch' plot."""

    label: str
    points: tuple[Point, ...]

    def batches(self) -> list[int]:
        """The nominal batch (the cap, `max_batch`) of each point: the x axis of every 'vs batch cap' plot."""
        return [p.max_batch for p in self.points]

    def values(self, name: str) -> list[float | None]:
        """One figure per point (None where the point lacks it)."""
        return [p.figure(name) for p in self.points]

    def intervals(self, name: str) -> list[tuple[float, float] | None]:
        """Each point's 95 % interval of `name` over its repeats (None where it ran once)."""
        return [p.interval(name) for p in self.points]


@dataclass(frozen=True)
class SweepData:
    """What a sweep directory holds: its spec, the environment it ran on and its points."""

    directory: Path
    spec: dict
    environment: dict
    points: tuple[Point, ...]  # finished ones
    failed: tuple[dict, ...] = field(default=())  # the records of the points that did not finish: key, reason

    def replica_points(self) -> list[Point]:
        return [p for p in self.points if p.replicas > 1]

    def energy_sources(self) -> set[str]:
        """The energy_source of every point; 'none' for points that do not record one."""
        return {p.energy_source or "none" for p in self.points}


def point_label(point: Point) -> str:
    """'B=64', or 'N x B=64' for a replica point."""
    return f"B={point.max_batch}" if point.replicas == 1 else f"{point.replicas} x B={point.max_batch}"


def read_for_report(sweep: str | Path | Sweep) -> Sweep:
    """The sweep, read from its directory (sweep.json and points.jsonl) unless it was already; ReportError naming
    DIR for an absent directory or a sweep without a finished point."""
    if isinstance(sweep, Sweep):
        return sweep
    try:
        return read_sweep(sweep)  # energy derived as the advisor derives it: the figures its frontiers use
    except StoreError as exc:
        raise ReportError(str(exc)) from exc


def load_sweep(sweep: str | Path | Sweep) -> SweepData:
    """What the report shows of a sweep already read, or read from its directory (see `read_for_report`)."""
    sweep = read_for_report(sweep)
    return SweepData(directory=sweep.directory, spec=sweep.spec, environment=sweep.environment,
                     points=tuple(sorted(sweep.points(), key=_order)), failed=sweep.failed)


def _order(point: Point) -> tuple:
    return point.replicas, point.threads, point.kv_tokens or 0, point.max_batch


def batch_series(points: tuple[Point, ...] | list[Point]) -> list[Series]:
    """Group points by replicas and threads; also by KV budget where one batch cap has several budgets."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.replicas, p.threads), []).append(p)
    split_groups = {key: _by_kv(members) for key, members in groups.items()}
    several = len(groups) > 1
    series = []
    for (replicas, threads), parts in split_groups.items():
        for kv_tokens, members in parts:
            label = ["1 engine" if replicas == 1 else f"{replicas} replicas (batch cap per replica)"]
            if several and threads:
                label.append(f"{threads} thread{'s' if threads > 1 else ''}")
            if kv_tokens is not None:
                label.append(f"KV {kv_tokens} tokens")
            series.append(Series(", ".join(label), tuple(sorted(members, key=lambda p: p.max_batch))))
    return series


def _by_kv(members: list[Point]) -> list[tuple[int | None, list[Point]]]:
    """One part when every batch cap appears once (KV budgets then follow the cap), else one part per budget."""
    batches = [p.max_batch for p in members]
    if len(batches) == len(set(batches)):
        return [(None, members)]
    parts: dict[int | None, list[Point]] = {}
    for p in members:
        parts.setdefault(p.kv_tokens, []).append(p)
    return list(parts.items())
