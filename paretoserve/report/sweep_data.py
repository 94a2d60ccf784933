"""A sweep directory read for the report: its points grouped into series over the batch cap."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.limits import UserError
from paretoserve.results.point import max_batch_of, replicas_of
from paretoserve.results.store import StoreError
from paretoserve.results.sweep import read_sweep


class ReportError(UserError):
    """The report cannot be made from what it was given; the message names the input and what is allowed."""


@dataclass(frozen=True)
class Series:
    """Points that differ only in their batch cap, sorted by it: one line on a 'vs batch' plot."""

    label: str
    points: tuple[dict, ...]

    def batches(self) -> list[int]:
        """The nominal batch (the cap, `max_batch`) of each point: the x axis of every 'vs batch cap' plot."""
        return [max_batch_of(p) for p in self.points]

    def values(self, name: str) -> list[float | None]:
        """One summary field per point (None where the point lacks it)."""
        return [p.get(name) for p in self.points]

    def intervals(self, name: str) -> list[tuple[float, float] | None]:
        """Each point's 95 % interval of `name` over its repeats (None where it ran once)."""
        bounds = [(p.get("ci95") or {}).get(name) for p in self.points]
        return [(b[0], b[1]) if b else None for b in bounds]


@dataclass(frozen=True)
class SweepData:
    """What a sweep directory holds: its spec, the environment it ran on and its points."""

    directory: Path
    spec: dict
    environment: dict
    points: tuple[dict, ...]  # status ok
    failed: tuple[dict, ...] = field(default=())

    def replica_points(self) -> list[dict]:
        return [p for p in self.points if replicas_of(p) > 1]

    def energy_sources(self) -> set[str]:
        """The energy_source of every point; 'none' for points that do not record one."""
        return {p.get("energy_source") or "none" for p in self.points}


def point_label(point: dict) -> str:
    """'B=64', or 'N x B=64' for a replica point."""
    batch = max_batch_of(point)
    replicas = replicas_of(point)
    return f"B={batch}" if replicas == 1 else f"{replicas} x B={batch}"


def load_sweep(directory: str | Path) -> SweepData:
    """Read sweep.json and points.jsonl; an absent directory or a sweep without a finished point is an error."""
    try:
        sweep = read_sweep(directory)  # energy derived as the advisor derives it: the figures its frontiers use
    except StoreError as exc:
        raise ReportError(str(exc)) from exc
    return SweepData(directory=sweep.directory, spec=sweep.spec, environment=sweep.environment,
                     points=tuple(sorted(sweep.records, key=_order)), failed=sweep.failed)


def _order(point: dict) -> tuple:
    c = point["config"]
    return replicas_of(point), c.get("threads") or 0, c.get("kv_tokens") or 0, max_batch_of(point)


def batch_series(points: tuple[dict, ...] | list[dict]) -> list[Series]:
    """Group points by replicas and threads; also by KV budget where one batch cap has several budgets."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((replicas_of(p), p["config"].get("threads") or 0), []).append(p)
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
            series.append(Series(", ".join(label), tuple(sorted(members, key=max_batch_of))))
    return series


def _by_kv(members: list[dict]) -> list[tuple[int | None, list[dict]]]:
    """One part when every batch cap appears once (KV budgets then follow the cap), else one part per budget."""
    batches = [max_batch_of(p) for p in members]
    if len(batches) == len(set(batches)):
        return [(None, members)]
    parts: dict[int | None, list[dict]] = {}
    for p in members:
        parts.setdefault(p["config"].get("kv_tokens"), []).append(p)
    return list(parts.items())
