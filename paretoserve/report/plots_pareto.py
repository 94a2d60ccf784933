"""The Pareto frontiers: every measured point, with the non-dominated ones joined and labelled."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from paretoserve.report.figure import B_OPT_COLOUR, new_figure
from paretoserve.report.sweep_data import point_label

# Memory a configuration takes, best measure first: device or process peak, else the KV cache it used or holds.
MEMORY_FIELDS = (("device_memory_peak_bytes", "device memory peak"), ("rss_peak_bytes", "engine RSS peak"),
                 ("kv_peak_bytes", "KV cache used (peak)"), ("kv_budget_bytes", "KV cache allocated"))


@dataclass(frozen=True)
class Frontier:
    """Two summary fields and which direction is better for each (True = higher is better)."""

    title: str
    x_field: str
    x_label: str
    x_higher_better: bool
    y_field: str
    y_label: str
    y_higher_better: bool

    def value(self, point: dict, name: str) -> float | None:
        v = point.get(name)
        return float(v) if isinstance(v, (int, float)) else None

    def shown(self, point: dict, name: str) -> float | None:
        """The value in the unit of its axis label: bytes as GB."""
        v = self.value(point, name)
        return v / 1e9 if v is not None and name.endswith("_bytes") else v


def frontiers_for(points: list[dict]) -> list[Frontier]:
    """The frontiers the points have data for: throughput vs p50 and p99 TPOT (else ITL), memory and energy."""
    def has(name: str) -> bool:
        return any(p.get(name) is not None for p in points)

    latency = "tpot_ms" if has("median_tpot_ms") or has("p99_tpot_ms") else "itl_ms"
    throughput = ("output_throughput", "output throughput (tok/s)", True)
    found = [Frontier(f"throughput vs {stat} {latency[:-3].upper()}", f"{prefix}{latency}",
                      f"{stat} {latency[:-3].upper()} (ms)", False, *throughput)
             for prefix, stat in (("median_", "p50"), ("p99_", "p99"))]
    memory = next(((name, label) for name, label in MEMORY_FIELDS if has(name)), None)
    if memory:
        found.append(Frontier("throughput vs memory", memory[0], f"{memory[1]} (GB)", False, *throughput))
    energized = [p for p in points if p.get("energy_source") not in (None, "none")]
    if any(p.get("energy_per_output_token_j") is not None for p in energized):
        estimated = " (ESTIMATED)" if any(p.get("energy_source") == "estimated" for p in energized) else ""
        found.append(Frontier(f"energy per token vs throughput{estimated}", *throughput,
                              "energy_per_output_token_j", f"J per output token{estimated}", False))
    return [f for f in found if any(f.value(p, f.x_field) is not None and f.value(p, f.y_field) is not None
                                    for p in points)]


def non_dominated(points: list[dict], frontier: Frontier) -> list[dict]:
    """Points no other point beats or equals on both axes, sorted by x."""
    def oriented(p: dict) -> tuple[float, float]:
        x, y = frontier.value(p, frontier.x_field), frontier.value(p, frontier.y_field)
        return (x if frontier.x_higher_better else -x), (y if frontier.y_higher_better else -y)

    usable = [p for p in points if frontier.value(p, frontier.x_field) is not None
              and frontier.value(p, frontier.y_field) is not None]
    keep = []
    for p in usable:
        px, py = oriented(p)
        if not any(ox >= px and oy >= py and (ox, oy) != (px, py) for ox, oy in map(oriented, usable)):
            keep.append(p)
    return sorted(keep, key=lambda p: frontier.value(p, frontier.x_field))


def frontiers_figure(points: list[dict], b_opt: int | None) -> Figure | None:
    """One panel per frontier in frontiers_for; B_opt's point is ringed."""
    frontiers = frontiers_for(points)
    if not frontiers:
        return None
    columns = min(2, len(frontiers))
    rows = (len(frontiers) + columns - 1) // columns
    fig = new_figure(4.0 * columns, 3.3 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, frontier in zip(axes, frontiers):
        usable = [p for p in points if frontier.value(p, frontier.x_field) is not None
                  and frontier.value(p, frontier.y_field) is not None]
        ax.scatter([frontier.shown(p, frontier.x_field) for p in usable],
                   [frontier.shown(p, frontier.y_field) for p in usable], s=14, color="#999999", label="measured")
        best = non_dominated(usable, frontier)
        xs = [frontier.shown(p, frontier.x_field) for p in best]
        ys = [frontier.shown(p, frontier.y_field) for p in best]
        ax.plot(xs, ys, marker="o", markersize=4, color="#1f77b4", label="Pareto frontier")
        for p, x, y in zip(best, xs, ys):
            ax.annotate(point_label(p), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
        chosen = [p for p in usable if b_opt is not None and p["config"]["max_batch"] == b_opt
                  and int(p["config"].get("replicas") or 1) == 1]
        if chosen:
            ax.scatter([frontier.shown(p, frontier.x_field) for p in chosen],
                       [frontier.shown(p, frontier.y_field) for p in chosen], s=90, facecolors="none",
                       edgecolors=B_OPT_COLOUR, linewidths=1.5, label=f"B_opt = {b_opt}")
        if frontier.y_field == "energy_per_output_token_j":
            ax.set_yscale("log")
        ax.set_xlabel(frontier.x_label, fontsize=8)
        ax.set_ylabel(frontier.y_label, fontsize=8)
        ax.set_title(frontier.title, fontsize=9)
        ax.grid(True, alpha=0.3)
        falling = frontier.y_field == "energy_per_output_token_j"  # energy falls as throughput rises
        ax.legend(fontsize=6, loc="upper right" if falling else "lower right")
    for ax in axes[len(frontiers):]:
        ax.set_visible(False)
    return fig
