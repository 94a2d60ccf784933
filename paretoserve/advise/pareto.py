"""Pareto frontiers of a sweep: the points no other point beats on both axes at once."""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel

from paretoserve.advise.table import Point


class FrontierPoint(BaseModel):
    key: str  # the point's points.jsonl key
    config: dict  # the point's max_batch, batch, replicas, threads and kv_tokens
    x: float  # its value on the frontier's x axis
    y: float  # its value on the frontier's y axis


class Frontier(BaseModel):
    """Non-dominated points of one pair of axes, sorted by x; `better` says which way each axis improves."""

    name: str  # e.g. throughput_vs_p99_itl_ms, throughput_vs_memory, energy_per_output_token_vs_throughput
    x: str  # the x axis: a latency field (ms), memory_bytes or the throughput metric
    y: str  # the y axis: the throughput metric or energy_per_output_token_j (J)
    x_better: str  # "min" or "max"
    y_better: str  # "min" or "max"
    points: list[FrontierPoint]  # the points no other beats on both axes, sorted by x
    note: str = ""  # how an axis was measured (memory, energy source); empty for the latency frontiers


def non_dominated(pairs: list[tuple[float, float]], x_max: bool, y_max: bool) -> list[int]:
    """Indices of the pairs that no other pair matches or beats on both axes and beats on one."""
    def at_least(a: float, b: float, bigger: bool) -> bool:
        return a >= b if bigger else a <= b

    keep = []
    for i, (xi, yi) in enumerate(pairs):
        dominated = any(at_least(xj, xi, x_max) and at_least(yj, yi, y_max) and (xj, yj) != (xi, yi)
                        for j, (xj, yj) in enumerate(pairs) if j != i)
        if not dominated:
            keep.append(i)
    return keep


def frontier(name: str, points: list[Point], x: tuple[str, str, Callable[[Point], float | None]],
             y: tuple[str, str, Callable[[Point], float | None]], note: str = "") -> Frontier:
    """The frontier of `points` over axes given as (label, 'min'|'max', value of a point or None)."""
    usable = [(p, vx, vy) for p in points if (vx := x[2](p)) is not None and (vy := y[2](p)) is not None]
    kept = non_dominated([(vx, vy) for _, vx, vy in usable], x[1] == "max", y[1] == "max")
    chosen = sorted((usable[i] for i in kept), key=lambda t: t[1])
    return Frontier(name=name, x=x[0], y=y[0], x_better=x[1], y_better=y[1], note=note,
                    points=[FrontierPoint(key=p.key, config=p.config(), x=vx, y=vy) for p, vx, vy in chosen])


def frontiers(points: list[Point], metric: str, memory_of: Callable[[Point], float | None],
              memory_note: str) -> list[Frontier]:
    """Throughput vs TPOT and ITL (p50, p99), throughput vs memory, energy per output token vs throughput."""
    throughput = (metric, "max", lambda p: p.throughput(metric))
    out = []
    for stat in ("median", "p99"):
        for lat in ("tpot", "itl"):
            field = f"{stat}_{lat}_ms"
            latency = (field, "min", lambda p, f=field: p.latency_ms.get(f))
            out.append(frontier(f"throughput_vs_{field}", points, latency, throughput))
    out.append(frontier("throughput_vs_memory", points, ("memory_bytes", "min", memory_of), throughput, memory_note))
    energy = [p.energy_source or "unknown" for p in points if p.energy_per_output_token_j is not None]
    out.append(frontier("energy_per_output_token_vs_throughput", points, throughput,
                        ("energy_per_output_token_j", "min", lambda p: p.energy_per_output_token_j),
                        f"energy source: {', '.join(sorted(set(energy)))}" if energy else "no energy measured"))
    return out
