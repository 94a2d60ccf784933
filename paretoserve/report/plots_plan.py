"""Plots of the plan: the memory breakdown bar at B_opt and the replica comparison."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from paretoserve.report.figure import B_OPT_COLOUR, new_figure
from paretoserve.report.recommendation import MemoryBreakdown, ReplicaPlan
from paretoserve.report.sweep_data import point_label, replicas_of

MEMORY_COLOURS = {"weights": "#7f7f7f", "KV needed": "#1f77b4", "KV freed": "#2ca02c", "rest": "#dddddd"}


@dataclass(frozen=True)
class Bar:
    """One configuration on the replica comparison."""

    label: str
    output_throughput: float
    latency_text: str
    measured: bool
    recommended: bool = False


def memory_breakdown_figure(memory: MemoryBreakdown) -> Figure:
    """One horizontal bar of device memory: weights, KV needed at B_opt, KV freed, rest (GB and %)."""
    parts = [("KV needed", memory.kv_need_bytes), ("KV freed", memory.kv_freed_bytes)]
    if memory.weights_bytes is not None:
        parts.insert(0, ("weights", memory.weights_bytes))
    parts.append(("rest" if memory.weights_bytes is not None else "rest (weights included)", memory.rest_bytes()))
    fig = new_figure(7.0, 2.3)
    ax = fig.add_subplot()
    left = 0.0
    for name, size in parts:
        share = size / memory.device_bytes
        ax.barh([0], [size / 1e9], left=left, color=MEMORY_COLOURS.get(name.split(" (")[0], "#dddddd"),
                edgecolor="white", label=f"{name}: {size / 1e9:.2f} GB ({share:.1%})")
        if share >= 0.06:
            ax.text(left + size / 2e9, 0, f"{share:.0%}", ha="center", va="center", fontsize=7)
        left += size / 1e9
    ax.set_xlim(0, memory.device_bytes / 1e9)
    ax.set_yticks([])
    ax.set_xlabel(f"device memory (GB, of {memory.device_bytes / 1e9:.1f})", fontsize=8)
    ax.set_title("Memory at B_opt", fontsize=9)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig


def replica_bars(points: list[dict], b_opt: int | None, plan: ReplicaPlan | None) -> list[Bar]:
    """Measured replica points beside the best single engine and B_opt; else B_opt beside the predicted plan."""
    singles = [p for p in points if replicas_of(p) == 1 and p.get("output_throughput") is not None]
    replicated = [p for p in points if replicas_of(p) > 1 and p.get("output_throughput") is not None]
    if not replicated and plan is None:
        return []
    chosen = {id(p): p for p in ([max(singles, key=lambda p: p["output_throughput"])] if singles else [])}
    chosen.update({id(p): p for p in singles if p["config"]["max_batch"] == b_opt})
    bars = [_measured_bar(p, plan) for p in sorted(chosen.values(), key=lambda p: p["config"]["max_batch"])]
    bars += [_measured_bar(p, plan) for p in sorted(replicated, key=lambda p: (replicas_of(p), p["config"]["max_batch"]))]
    if plan is not None and not plan.measured and plan.output_throughput is not None:
        latency = ", ".join(f"{k} {v:.3g}" for k, v in plan.latencies_ms.items())
        bars.append(Bar(f"{plan.replicas} x B={plan.max_batch}\n(predicted)", plan.output_throughput, latency,
                        measured=False, recommended=True))
    return bars


def _measured_bar(point: dict, plan: ReplicaPlan | None) -> Bar:
    latency = next((f"{name} {point[name]:.3g}" for name in ("mean_tpot_ms", "mean_itl_ms") if point.get(name)), "")
    recommended = plan is not None and plan.measured and plan.replicas == replicas_of(point) \
        and plan.max_batch == point["config"]["max_batch"]
    return Bar(point_label(point), float(point["output_throughput"]), latency, measured=True, recommended=recommended)


def replica_figure(bars: list[Bar]) -> Figure | None:
    """Total output throughput per configuration; predicted bars hatched, the recommended one outlined."""
    if not bars:
        return None
    fig = new_figure(max(4.5, 1.3 * len(bars) + 1.5), 3.4)
    ax = fig.add_subplot()
    for i, bar in enumerate(bars):
        ax.bar(i, bar.output_throughput, color="#1f77b4" if bar.measured else "#ffffff",
               edgecolor=B_OPT_COLOUR if bar.recommended else "#1f77b4", linewidth=2.5 if bar.recommended else 1,
               hatch=None if bar.measured else "//")
        ax.text(i, bar.output_throughput, f"{bar.output_throughput:,.0f} tok/s\n{bar.latency_text}",
                ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(bars)), [b.label for b in bars], fontsize=7)
    ax.set_ylabel("total output throughput (tok/s)")
    ax.set_ylim(0, max(b.output_throughput for b in bars) * 1.25)
    ax.set_title("Replicas (N x batch cap B): measured solid, predicted hatched, recommended outlined green",
                 fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig
