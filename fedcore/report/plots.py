"""The report's figures, drawn from `results.json` alone, as PNG bytes (matplotlib without pyplot's state)."""

from __future__ import annotations

import io
from typing import cast

import numpy as np
from matplotlib.figure import Figure

COLOURS = {"fedavg": "#d62728", "fedavg-ds": "#7f7f7f", "fedprox": "#1f77b4", "fedcore": "#2ca02c"}
DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def accuracy_over_time(results: dict) -> bytes:
    """Held-out accuracy of the global model against the simulated clock, per method; targets dotted."""
    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = figure.add_subplot()
    for name, method in results["methods"].items():
        times = [r["sim_time"] for r in method["rounds"]]
        accuracy = [r["accuracy"] for r in method["rounds"]]
        ax.plot(times, accuracy, label=name, color=COLOURS.get(name), linewidth=1.4)
    for key in results["targets"]:
        ax.axhline(float(key), color="#999", linestyle=":", linewidth=0.8)
    ax.set_xscale("symlog", linthresh=max(results["deadline"], 1.0))
    ax.set_xlim(left=0)
    ax.set_xlabel("simulated time (log scale past one round deadline)")
    ax.set_ylabel("held-out accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(figure)


def round_time_violins(results: dict) -> bytes:
    """Each round's time over the round deadline (slowest client that took part), per method; 1 = deadline."""
    names = list(results["methods"])
    data = []
    for name in names:
        ratios = [r["round_time"] / results["deadline"] for r in results["methods"][name]["rounds"][1:]]
        data.append([x for x in ratios if x > 0] or [0.0])
    figure = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = figure.add_subplot()
    parts = ax.violinplot(data, showmedians=True, showextrema=True)
    bodies = cast(list, parts["bodies"])  # the stubs type each entry as one Collection; this one is a list
    for body, name in zip(bodies, names, strict=True):
        body.set_facecolor(COLOURS.get(name, "#9467bd"))
        body.set_alpha(0.5)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="deadline")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("round time / round deadline")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _png(figure)


def coreset_sizes(results: dict) -> bytes | None:
    """FedCore's coreset size against the client's data size, one point per client and round."""
    method = results["methods"].get("fedcore")
    if method is None:
        return None
    points = [(c["n"], c["coreset_size"]) for r in method["rounds"] for c in r["clients"] if c["coreset_size"] > 0]
    if not points:
        return None
    n, k = np.array(points).T
    figure = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = figure.add_subplot()
    ax.scatter(n, k, s=14, alpha=0.5, color=COLOURS["fedcore"], label="coreset (client, round)")
    line = np.array([n.min(), n.max()])
    ax.plot(line, line, color="#999", linestyle=":", label="full data")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("client training samples n")
    ax.set_ylabel("coreset size (epochs 2..E)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(figure)
