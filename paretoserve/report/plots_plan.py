"""Plots of the plan: the memory breakdown bar at B_opt and the replica comparison."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from paretoserve.advise import Advice
from paretoserve.advise.memory import MemoryAdvice
from paretoserve.advise.replicas import PlanOption
from paretoserve.report.figure import B_OPT_COLOUR, new_figure
from paretoserve.report.sweep_data import point_label
from paretoserve.results.point import Point

MEMORY_PARTS = {"weights": ("weights", "#7f7f7f"), "kv_needed": ("KV needed at B_opt", "#1f77b4"),
                "kv_freed": ("KV freed", "#2ca02c"), "rest": ("rest", "#dddddd")}


@dataclass(frozen=True)
class Bar:
    """One N x B configuration on the replica comparison; throughput in the unit the y axis names."""

    label: str
    throughput: float
    latency_text: str
    measured: bool
    recommended: bool = False
    throughput_low: float | None = None  # predicted: the pessimistic end of the prediction
    meets_slo: bool = True
    ci95: tuple[float, float] | None = None  # measured over repeats: the 95 % interval, drawn as an error bar


def memory_breakdown_figure(memory: MemoryAdvice) -> Figure | None:
    """One horizontal bar of device memory: weights, KV needed at B_opt, KV freed, rest (GB and % each)."""
    if not memory.breakdown or not memory.device_memory_bytes:
        return None
    fig = new_figure(7.0, 2.3)
    ax = fig.add_subplot()
    left = 0.0
    for part in (p for p in memory.breakdown if p.bytes > 0):  # a part estimated below zero is in the table only
        name, colour = MEMORY_PARTS.get(part.part, (part.part, "#bbbbbb"))
        if part.part == "rest" and memory.weights_bytes is None:
            name = "rest (weights included: not known)"
        ax.barh([0], [part.bytes / 1e9], left=left, color=colour, edgecolor="white",
                label=f"{name}: {part.bytes / 1e9:.2f} GB ({part.fraction:.1%})")
        if part.fraction >= 0.06:
            ax.text(left + part.bytes / 2e9, 0, f"{part.fraction:.0%}", ha="center", va="center", fontsize=7)
        left += part.bytes / 1e9
    ax.set_xlim(0, memory.device_memory_bytes / 1e9)
    ax.set_yticks([])
    ax.set_xlabel(f"device memory (GB, of {memory.device_memory_bytes / 1e9:.1f})", fontsize=8)
    ax.set_title("Memory at B_opt", fontsize=9)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig


def advice_bars(advice: Advice) -> list[Bar]:
    """The best single engine, B_opt alone, every replica option (measured or predicted) and the plan."""
    plan = advice.replica_plan
    chosen: dict[tuple, PlanOption] = {}
    for o in [plan.baseline, *plan.options]:
        if o.key == advice.b_opt_key or o.replicas > 1 or o is plan.baseline:
            chosen.setdefault((o.replicas, o.max_batch, o.predicted_or_measured), o)
    bars = []
    for o in sorted(chosen.values(), key=lambda o: (o.replicas, o.max_batch)):
        predicted = o.predicted_or_measured == "predicted"
        recommended = (o.replicas, o.max_batch, o.predicted_or_measured) == \
            (plan.replicas, plan.max_batch, plan.predicted_or_measured)
        latency = next((f"{k} {o.latency_ms[k]:.3g}" for k in ("mean_tpot_ms", "mean_itl_ms") if k in o.latency_ms), "")
        bars.append(Bar(f"{o.replicas} x B={o.max_batch}" + ("\n(predicted)" if predicted else ""), o.throughput,
                        latency, measured=not predicted, recommended=recommended, throughput_low=o.throughput_low,
                        meets_slo=o.meets_slo, ci95=o.throughput_ci95))
    return bars if len(bars) > 1 else []


def measured_bars(points: list[Point]) -> list[Bar]:
    """Without advice: the measured replica points beside the single engine with the most throughput."""
    replicated = [p for p in points if p.replicas > 1]
    singles = [p for p in points if p.replicas == 1]
    if not replicated:
        return []
    shown = ([max(singles, key=lambda p: p.output_throughput)] if singles else []) + replicated
    return [Bar(point_label(p), p.output_throughput,
                next((f"{k} {p.latency_ms[k]:.3g}" for k in ("mean_tpot_ms", "mean_itl_ms") if k in p.latency_ms), ""),
                measured=True, ci95=p.interval("output_throughput")) for p in shown]


def replica_figure(bars: list[Bar], throughput_label: str) -> Figure | None:
    """Total throughput per configuration: measured solid, predicted hatched up to its optimistic end with a
    tick at its pessimistic end, the recommended plan outlined green, SLO misses named."""
    if not bars:
        return None
    fig = new_figure(max(4.5, 1.2 * len(bars) + 1.5), 3.4)
    ax = fig.add_subplot()
    for i, bar in enumerate(bars):
        ax.bar(i, bar.throughput, color="#1f77b4" if bar.measured else "#ffffff",
               edgecolor=B_OPT_COLOUR if bar.recommended else "#1f77b4", linewidth=2.5 if bar.recommended else 1,
               hatch=None if bar.measured else "//",
               yerr=None if bar.ci95 is None else [[bar.throughput - bar.ci95[0]], [bar.ci95[1] - bar.throughput]],
               capsize=3, error_kw={"ecolor": "#444444", "linewidth": 1})
        if bar.throughput_low is not None:
            ax.hlines(bar.throughput_low, i - 0.4, i + 0.4, colors="#444444", linestyles="--", linewidth=1)
        note = "" if bar.meets_slo else "\nmisses SLO"
        ax.text(i, bar.throughput, f"{bar.throughput:,.0f}\n{bar.latency_text}{note}", ha="center", va="bottom",
                fontsize=6)
    ax.set_xticks(range(len(bars)), [b.label for b in bars], fontsize=7)
    ax.set_ylabel(f"total {throughput_label}", fontsize=8)
    ax.set_ylim(0, max(b.throughput for b in bars) * 1.3)
    ax.set_title("Replicas x batch cap: measured solid, predicted hatched (dashed: pessimistic end), "
                 "plan outlined green", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    return fig
