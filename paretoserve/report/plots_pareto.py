"""The Pareto frontiers (as the advisor computes them): every measured point, the non-dominated ones joined."""

from __future__ import annotations

from matplotlib.figure import Figure

from paretoserve.advise.pareto import Frontier, FrontierPoint
from paretoserve.report.figure import B_OPT_COLOUR, new_figure
from paretoserve.results.point import Point

FIELD_LABELS = {"median_tpot_ms": "p50 TPOT (ms)", "p99_tpot_ms": "p99 TPOT (ms)", "median_itl_ms": "p50 ITL (ms)",
                "p99_itl_ms": "p99 ITL (ms)", "memory_bytes": "memory (GB)",
                "output_throughput": "output throughput (tok/s)", "total_token_throughput": "total throughput (tok/s)",
                "request_throughput": "throughput (requests/s)", "energy_per_output_token_j": "J per output token"}


def axis_label(field: str, estimated_energy: bool) -> str:
    label = FIELD_LABELS.get(field, field)
    return label + " (ESTIMATED)" if field == "energy_per_output_token_j" and estimated_energy else label


def shown(field: str, value: float | None) -> float | None:
    """A value in the unit of its axis label: bytes as GB."""
    return None if value is None else scaled(field, value)


def scaled(field: str, value: float) -> float:
    """A known value in the unit of its axis label: bytes as GB."""
    return value / 1e9 if field.endswith("_bytes") else value


def frontier_label(point: FrontierPoint) -> str:
    """'B=64', or 'N x B=64' for replicas (batch caps)."""
    replicas, cap = point.config.get("replicas", 1), point.config.get("max_batch")
    return f"B={cap}" if replicas == 1 else f"{replicas} x B={cap}"


def frontier_title(frontier: Frontier, estimated_energy: bool) -> str:
    return f"{axis_label(frontier.y, estimated_energy)} vs {axis_label(frontier.x, estimated_energy)}"


def frontiers_figure(frontiers: list[Frontier], points: list[Point], b_opt_key: str | None,
                     estimated_energy: bool) -> Figure | None:
    """One panel per frontier with points: measured points grey (not on the memory axis, whose frontier may
    hold estimates), the non-dominated ones joined and labelled, B_opt's point ringed."""
    frontiers = [f for f in frontiers if f.points]
    if not frontiers:
        return None
    columns = min(2, len(frontiers))
    rows = (len(frontiers) + columns - 1) // columns
    fig = new_figure(4.0 * columns, 3.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, frontier in zip(axes, frontiers, strict=False):
        cloud = [(shown(frontier.x, _measured(p, frontier.x)), shown(frontier.y, _measured(p, frontier.y)))
                 for p in points]
        cloud = [(x, y) for x, y in cloud if isinstance(x, (int, float)) and isinstance(y, (int, float))]
        if cloud:
            ax.scatter(*zip(*cloud, strict=True), s=14, color="#999999", label="measured")
        xs = [scaled(frontier.x, p.x) for p in frontier.points]
        ys = [scaled(frontier.y, p.y) for p in frontier.points]
        ax.plot(xs, ys, marker="o", markersize=4, color="#1f77b4", label="Pareto frontier")
        by_key = {p.key: p.ci95 for p in points}
        for axis, field, values in (("xerr", frontier.x, xs), ("yerr", frontier.y, ys)):
            bounds = [by_key.get(p.key, {}).get(field) for p in frontier.points]
            if any(bounds):  # repeated points: their 95 % intervals, in the axis' unit
                spread = [[v - scaled(field, b[0]) if b else 0 for v, b in zip(values, bounds, strict=True)],
                          [scaled(field, b[1]) - v if b else 0 for v, b in zip(values, bounds, strict=True)]]
                ax.errorbar(xs, ys, fmt="none", ecolor="#1f77b4", capsize=2, **{axis: spread})
        for p, x, y in zip(frontier.points, xs, ys, strict=True):
            ax.annotate(frontier_label(p), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
        chosen = [(x, y) for p, x, y in zip(frontier.points, xs, ys, strict=True) if p.key == b_opt_key]
        if chosen:
            ax.scatter(*zip(*chosen, strict=True), s=90, facecolors="none", edgecolors=B_OPT_COLOUR, linewidths=1.5,
                       label="B_opt")
        if frontier.y == "energy_per_output_token_j":
            ax.set_yscale("log")
        ax.set_xlabel(axis_label(frontier.x, estimated_energy), fontsize=8)
        ax.set_ylabel(axis_label(frontier.y, estimated_energy), fontsize=8)
        ax.set_title(frontier_title(frontier, estimated_energy), fontsize=8)
        ax.grid(True, alpha=0.3)
        falling = frontier.y == "energy_per_output_token_j"  # measured energy falls as throughput rises
        ax.legend(fontsize=6, loc="upper right" if falling else "lower right")  # fixed: "best" costs a search
    for ax in axes[len(frontiers):]:
        ax.set_visible(False)
    return fig


def _measured(point: Point, field: str) -> float | None:
    """The point's own figure on a frontier's axis; none on the memory axis (KV peak + weights where the
    frontier had no measured memory)."""
    return None if field == "memory_bytes" else point.figure(field)
