"""Showing a bench result: a rich table in the terminal, JSON to a file or stdout, a progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from paretoserve.bench.records import RequestRecord
from paretoserve.bench.runner import Progress as ProgressSink

# (label, field, unit, scale); fields read from the whole run and from steady_state alike
ROWS = [
    ("completed / failed", None, "", 1),
    ("duration", "duration", "s", 1),
    ("request throughput", "request_throughput", "req/s", 1),
    ("output throughput", "output_throughput", "tok/s", 1),
    ("total token throughput", "total_token_throughput", "tok/s", 1),
    *[(f"{stat} {metric.split('_')[0].upper()}", f"{stat}_{metric}", "ms", 1)
      for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms") for stat in ("mean", "median", "p90", "p99")],
]
ENGINE_ROWS = [
    ("mean / max running", ("mean_running", "max_running")),
    ("mean waiting", ("mean_waiting",)),
    ("KV cache peak", ("kv_peak_fraction",)),
    ("preemptions", ("preemptions",)),
    ("engine RSS peak", ("rss_peak_bytes",)),
    ("engine CPU (busy cores)", ("engine_cpu_cores",)),
    ("device memory peak", ("device_memory_peak_bytes",)),
    ("client overhead p50 (per request)", ("client_overhead_p50_ms",)),
    ("schedule lag p99", ("schedule_lag_p99_ms",)),
    ("event-loop lag p99", ("event_loop_lag_p99_ms",)),
    ("client CPU", ("client_cpu_fraction",)),
]


class RichProgress(ProgressSink):
    """A progress bar on stderr: requests done of the total, or seconds of --duration."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                                  refresh_per_second=4, transient=True)
        self._task = TaskID(0)  # the one task, added by start()
        self._total = 0.0  # requests, or seconds of --duration
        self._by_time = False
        self._done = self._failed = 0

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start(self, total: int | None, duration_s: float | None) -> None:
        self._by_time = total is None
        self._total = float(total if total is not None else math.ceil(duration_s or 0))
        self._task = self._progress.add_task("bench", total=self._total, info="")

    def done(self, record: RequestRecord, now_s: float) -> None:
        self._done += 1
        self._failed += record.error is not None
        info = f"{self._done} done" + (f", {self._failed} failed" if self._failed else "")
        if self._by_time:
            self._progress.update(self._task, completed=min(now_s, self._total), info=info)
        else:
            self._progress.update(self._task, advance=1, info=info)


def render(result: dict, console: Console) -> None:
    """The summary as a table: whole run beside the steady-state window, then the engine and client."""
    steady = result.get("steady_state") or {}
    has_steady = "start_s" in steady
    table = Table(title=f"paretoserve bench: {result.get('model_id') or 'model ?'} at {result['base_url']} "
                        f"({_load_label(result)})", title_justify="left")
    repeats, ci95 = result.get("repeats", 1), result.get("ci95") or {}
    table.add_column("metric")
    table.add_column("whole run" if repeats == 1 else f"mean of {repeats} runs [95 % interval]", justify="right")
    if has_steady:
        table.add_column(f"steady state ({steady['slots']} busy{', first run' if repeats > 1 else ''})",
                         justify="right")
    for label, field, unit, _ in ROWS:
        if field is None:
            cells = [f"{result['completed']} / {result['failed']}"]
            if has_steady:
                cells.append(f"{steady['completed']} / {steady['failed']}")
        else:
            cells = [_fmt(result.get(field), unit) + _interval(ci95.get(field))]
            if has_steady:
                cells.append(_fmt(steady.get(field), unit))
        table.add_row(label, *cells)
    if result.get("slo"):
        table.add_section()
        table.add_row(f"request goodput ({result['slo']})", _fmt(result.get("request_goodput"), "req/s"))
        table.add_row("SLO attainment", f"{result['slo_attainment']:.1%}")
        table.add_row("aggregate SLOs met", "yes" if result.get("slo_met") else "no")
    table.add_section()
    for label, fields in ENGINE_ROWS:
        values = [result.get(f) for f in fields]
        if all(v is None for v in values):
            continue
        table.add_row(label, " / ".join(_fmt_field(f, v) for f, v in zip(fields, values, strict=True)))
    source = escape(f"[{result.get('energy_source')}]")
    table.add_row(f"energy {source}", _fmt(result.get("energy_j"), "J"))
    table.add_row(f"energy per output token {source}", _fmt(result.get("energy_per_output_token_j"), "J"))
    console.print(table)
    if result.get("energy_note"):
        console.print(f"energy: {escape(result['energy_note'])}", highlight=False)
    if not has_steady and steady.get("reason"):
        console.print(f"steady state: none ({escape(steady['reason'])})", highlight=False)
    for warning in result.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=_json_default)


def _load_label(result: dict) -> str:
    mode = result["mode"]
    if mode == "concurrency":
        return f"concurrency {result['max_concurrency']}"
    config = result["config"]
    if mode == "rate":
        arrival = config["arrival"]
        if arrival == "gamma":
            arrival = f"gamma (burstiness {result['burstiness']:g})"
        ramp = f", ramped up over {config['ramp_up_s']:g} s" if config.get("ramp_up_s") else ""
        return f"{arrival} rate {result['request_rate']:g} req/s{ramp}"
    if mode == "trace":
        return f"trace {Path(config['dataset'].removeprefix('trace:')).name}"
    return "burst"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}" if abs(value) < 1e5 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def _interval(bounds: list[float] | None) -> str:
    return f" [{_fmt(bounds[0], '')}, {_fmt(bounds[1], '')}]" if bounds else ""


def _fmt_field(field: str, value) -> str:
    if value is None:
        return "-"
    if field.endswith("_bytes"):
        return f"{value / 2**20:,.1f} MiB"
    if field.endswith("_fraction"):
        return f"{value:.1%}"
    if field.endswith("_ms"):
        return f"{value:.3f} ms"
    return f"{value:,.2f}" if isinstance(value, float) and not float(value).is_integer() else f"{int(value):,}"


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
