"""Where the report's advice comes from: computed by the advise package, or given (read from a saved advice.json
by advise/advice_file.py, or its dict)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from paretoserve.advise import Advice, AdviseConfig, AdviseError, advise_table, sweep_table
from paretoserve.advise.pareto import Frontier, frontiers
from paretoserve.report.sweep_data import ReportError, read_for_report
from paretoserve.results.point import Point
from paretoserve.results.sweep import Sweep

MEASURED_MEMORY_NOTE = "measured peak: device memory, else engine RSS"


def compute_advice(sweep: str | Path | Sweep, config: AdviseConfig) -> tuple[Advice | None, str | None]:
    """The advice for the sweep (read already, or its directory), or None and the advisor's one-line reason
    (e.g. no batch meets the SLO)."""
    try:
        return advise_table(sweep_table(read_for_report(sweep)), config), None
    except (AdviseError, ReportError) as exc:
        return None, str(exc)


def as_advice(advice: Advice | dict | None) -> Advice | None:
    """Accept the advise result or its `model_dump()` / JSON dict."""
    if advice is None or isinstance(advice, Advice):
        return advice
    try:
        return Advice.model_validate(advice)
    except ValidationError as exc:
        raise ReportError(f"advice: not the shape `advise` returns: {exc.errors()[0]['msg']}") from exc


def sweep_frontiers(points: tuple[Point, ...], advice: Advice | None) -> list[Frontier]:
    """The advice's frontiers; without advice, the same frontiers of the sweep's finished `points` over measured
    memory only."""
    if advice is not None:
        return advice.pareto
    return frontiers(list(points), "output_throughput", lambda p: p.memory_bytes, MEASURED_MEMORY_NOTE)
