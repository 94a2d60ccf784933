"""The HTML page: headline table, the three figures, the run's settings."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from fedcore.report import plots

STYLE = """body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 1.5em auto; padding: 0 1em;
       color: #222; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: .85em; } th, td { border: 1px solid #ddd; padding: .25em .5em; }
th { background: #f3f3f3; } td { text-align: right; } td.text { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } p.note { font-size: .85em; color: #555; }"""


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return escape(str(value))


def headline_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    keys = results["targets"]
    headers = (["method", "final accuracy", "mean of last 10", "worst round / deadline", "median round / deadline",
                "total simulated time"] + [f"time to {k}" for k in keys] + [f"speed-up to {keys[-1]} vs fedavg"]
               + ["selection CPU s", "selection / training CPU"])
    speedups = results.get("time_to_accuracy_speedup_vs_fedavg", {})
    rows = []
    for name, m in results["methods"].items():
        speedup = speedups.get(name, {}).get(keys[-1]) if keys else None
        rows.append([name, m["final_accuracy"], m["final_accuracy_last10"], m["round_time_over_deadline"]["max"],
                     m["round_time_over_deadline"]["median"], m["sim_time_total"]]
                    + [m["time_to_accuracy"][k] for k in keys] + [speedup]
                    + [m["selection_cpu_s"], m["selection_share_of_training"]])
    return headers, rows


def _table(headers: list[str], rows: list[list]) -> str:
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(f'<td{" class=text" if i == 0 else ""}>{_fmt(v)}</td>' for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _image(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p class=note>{escape(alt)}: nothing to plot in this run.</p>"
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{escape(alt)}">'


def render(results: dict) -> str:
    config = results["config"]
    title = f"FedCore run: {results['dataset']}, {config['clients']} clients, {config['stragglers']:.0%} stragglers"
    settings = ", ".join(f"{k} = {v}" for k, v in config.items())
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Round deadline {results['deadline']:.4g} (epoch deadline {results['epoch_deadline']:.4g} x "
        f"{config['epochs']} epochs), backend {escape(results['backend'])}. {escape(results['time_unit'])}.</p>",
        "<h2>Headline figures</h2>", _table(*headline_rows(results)),
        "<p class=note>Accuracy is measured on held-out splits (the authors' synthetic figures are training "
        "accuracies). Time to accuracy: simulated clock at the end of the first round reaching the target.</p>",
        "<h2>Accuracy against simulated time</h2>", _image(plots.accuracy_over_time(results), "accuracy vs time"),
        "<h2>Round time over the deadline</h2>", _image(plots.round_time_violins(results), "round time violins"),
        "<h2>FedCore coreset sizes</h2>", _image(plots.coreset_sizes(results), "coreset sizes"),
        "<h2>Settings</h2>", f"<p class=note>{escape(settings)}</p>",
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")


def write_report(results: dict, path: Path) -> Path:
    path.write_text(render(results), encoding="utf-8")
    return path
