"""Matplotlib figures without pyplot's global state: made, styled and turned into PNG bytes here."""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
B_OPT_COLOUR = "#2ca02c"


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure drawn by the Agg canvas that savefig picks, independent of any pyplot state."""
    return Figure(figsize=(width_in, height_in), layout="constrained")


def to_png(figure: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes at `dpi` dots per inch."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, backend="agg")
    return buffer.getvalue()


def batch_axis(ax: Axes, batches: list[int], b_opt: BOptMark | None) -> None:
    """Log-2 x axis with a tick at every measured batch cap, and B_opt's cap marked when there is one."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(batches))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(b) for b in ticks], fontsize=7)
    ax.set_xlabel("batch cap (max concurrent sequences)")
    ax.grid(True, alpha=0.3)
    if b_opt is not None:
        ax.axvline(b_opt.max_batch, color=B_OPT_COLOUR, linestyle=":", linewidth=1.5, label=b_opt.label())


@dataclass(frozen=True)
class BOptMark:
    """Where B_opt sits on a batch-cap axis: the cap of its run, and the batch it reached there."""

    max_batch: int
    batch: int

    def label(self) -> str:
        return f"B_opt = {self.batch}" + (f" (cap {self.max_batch})" if self.batch != self.max_batch else "")


def colour(index: int) -> str:
    return SERIES_COLOURS[index % len(SERIES_COLOURS)]


def draw(ax, xs: list, ys: list, intervals: list, **style) -> None:
    """A line through (xs, ys), with error bars where the points have 95 % intervals (repeated runs)."""
    kept = [(x, y, ci) for x, y, ci in zip(xs, ys, intervals, strict=True) if x is not None and y is not None]
    if not kept:
        return
    x, y, ci = zip(*kept, strict=True)
    if any(ci):
        low = [v - (c[0] if c else v) for v, c in zip(y, ci, strict=True)]
        high = [(c[1] if c else v) - v for v, c in zip(y, ci, strict=True)]
        ax.errorbar(x, y, yerr=[low, high], capsize=2, **style)
    else:
        ax.plot(x, y, **style)


def pairs(xs: list, ys: list) -> tuple[list, list]:
    """Drop the positions where either value is missing."""
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
    return [x for x, _ in kept], [y for _, y in kept]
