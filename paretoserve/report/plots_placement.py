"""Plots of several models placed on one device: the device's memory as one bar (each model's weights and KV,
what stays free), each model's throughput over its batch cap with its B_opt, and the mix throughput of the
placement against time-sharing and one device per model."""

from __future__ import annotations

from matplotlib.figure import Figure

from paretoserve.advise.memory_map import MEMORY_CEILING, MemoryMap
from paretoserve.report.figure import B_OPT_COLOUR, BOptMark, colour, new_figure
from paretoserve.report.plots_batch import throughput_vs_batch
from paretoserve.report.sweep_data import batch_series
from paretoserve.results.placement import ColocationFigures
from paretoserve.results.point import Point

FREE_COLOUR = "#eeeeee"
ENLARGE_BELOW = 0.1  # the models' share of the device under which their part is drawn again, enlarged


def memory_map_figure(memory: MemoryMap, names: list[str]) -> Figure | None:
    """The device's memory as one horizontal bar: each model's weights (hatched) and KV (solid), all its replicas,
    then what stays free; where the models use under ENLARGE_BELOW of it, a second bar shows their part enlarged."""
    parts = [(f"{name}: {label}", m.replicas * size, colour(i), hatch)
             for i, (name, m) in enumerate(zip(names, memory.models, strict=True))
             for label, size, hatch in ((f"weights ({m.replicas} x {_bytes(m.weights_bytes)})", m.weights_bytes, "//"),
                                        (f"KV at cap {m.max_batch} ({m.replicas} x {_bytes(m.kv_bytes)}, "
                                         f"{m.kv_tokens:,} tokens)", m.kv_bytes, None))]
    used, device = memory.used_bytes, memory.device_bytes
    if used <= 0 and not device:
        return None
    bars = [("device" if device else "device (its memory unknown)", float(device or used))]
    if device and used / device < ENLARGE_BELOW:
        bars.append(("the models' part, enlarged", used))
    fig = new_figure(7.0, 1.5 + 0.75 * len(bars) + 0.2 * (len(parts) + 2))  # a legend line per part, free, ceiling
    for row, (ax, (title, span)) in enumerate(zip(fig.subplots(len(bars), 1, squeeze=False)[:, 0], bars,
                                                  strict=True)):
        scale, unit = (1e9, "GB") if span >= 1e9 else (1e6, "MB")
        left = 0.0
        for label, size, part_colour, hatch in parts:
            if size > 0:
                ax.barh([0], [size / scale], left=left / scale, color=part_colour, hatch=hatch, edgecolor="white",
                        label=label if row == 0 else None)
                if size / span >= 0.06:
                    ax.text((left + size / 2) / scale, 0, f"{size / span:.0%}", ha="center", va="center", fontsize=7)
                left += size
        if device and row == 0:
            free = memory.free_bytes or 0.0
            ax.barh([0], [free / scale], left=left / scale, color=FREE_COLOUR, edgecolor="white",
                    label=f"free: {_bytes(free)} ({free / device:.1%})")
            ax.axvline(MEMORY_CEILING * device / scale, color="#d62728", linestyle="--", linewidth=1,
                       label=f"the engines' shares sum to at most {MEMORY_CEILING:.0%}")
        ax.set_xlim(0, span / scale)
        ax.set_yticks([])
        ax.set_xlabel(f"{title} ({unit})", fontsize=8)
    fig.suptitle(f"Memory map: {_bytes(used)} used" + (f" of {_bytes(device)}" if device else ""), fontsize=9)
    fig.legend(loc="outside lower center", ncols=1, fontsize=7, frameon=False)  # one column: long labels fit
    return fig


def model_throughput_figure(name: str, points: tuple[Point, ...], b_opt: BOptMark) -> Figure | None:
    """One model's output throughput over the batch cap from its own tune's sweep, B_opt marked."""
    fig = throughput_vs_batch(batch_series(points), b_opt)
    if fig is not None:
        fig.axes[0].set_title(f"{name}: throughput vs batch cap", fontsize=10)
    return fig


def mix_throughput_figure(c: ColocationFigures) -> Figure:
    """Mix throughput (requests/s) of the placement, time-sharing and one device per model (per device, and in all
    over the devices it needs, hatched), each with the placement's gain over it."""
    bars = [("placement\n(1 device)", c.placement_rps, None, None),
            ("time-sharing\n(1 device)", c.time_sharing_rps, None, c.ratio(c.time_sharing_rps)),
            ("one device per model\nper device", c.solo_per_device_rps, None, c.ratio(c.solo_per_device_rps)),
            (f"one device per model\n(needs {c.devices} devices, in all)", c.solo_rps, "//", None)]
    fig = new_figure(6.6, 3.6)
    ax = fig.add_subplot()
    for i, (_, rps, hatch, ratio) in enumerate(bars):
        placement = i == 0
        ax.bar(i, rps, color="#ffffff" if hatch else colour(0), hatch=hatch,
               edgecolor=B_OPT_COLOUR if placement else colour(0), linewidth=2.5 if placement else 1)
        note = f"\nplacement {ratio:.2f} x" if ratio is not None else ""
        ax.text(i, rps, f"{rps:.3g} req/s{note}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    ax.set_ylabel("mix throughput (req/s)", fontsize=8)
    ax.set_ylim(0, max(b[1] for b in bars) * 1.3 or 1.0)
    ax.set_title("The largest total rate at which every model gets its share, min_i(rate_i / share_i)",
                 fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def _bytes(size: float | None) -> str:
    """GB above one, else MB: the memory of a small model reads in MB."""
    if size is None:
        return "-"
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
