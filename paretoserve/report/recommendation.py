"""Where the report's advice comes from: computed by the advise package, or read from a saved `advise --json`."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from paretoserve.advise import Advice, AdviseConfig, AdviseError, advise
from paretoserve.advise.pareto import Frontier, frontiers
from paretoserve.report.sweep_data import ReportError
from paretoserve.results.point import to_point

MEASURED_MEMORY_NOTE = "measured peak: device memory, else engine RSS"


def compute_advice(sweep_dir: str | Path, config: AdviseConfig) -> tuple[Advice | None, str | None]:
    """The advice for the sweep, or None and the advisor's one-line reason (e.g. no batch meets the SLO)."""
    try:
        return advise(sweep_dir, config), None
    except AdviseError as exc:
        return None, str(exc)


def load_advice_file(path: str | Path) -> Advice:
    """A saved `advise --json` output; a missing or malformed file is an error naming --advice."""
    try:
        return Advice.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise ReportError(f"--advice: cannot read {path}: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise ReportError(f"--advice: {path} is not `paretoserve advise --json` output ({where}: {first['msg']}); "
                          "save one with `paretoserve advise DIR --json > advice.json`") from exc


def as_advice(advice: Advice | dict | None) -> Advice | None:
    """Accept the advise result or its `model_dump()` / JSON dict."""
    if advice is None or isinstance(advice, Advice):
        return advice
    try:
        return Advice.model_validate(advice)
    except ValidationError as exc:
        raise ReportError(f"advice: not the shape `advise` returns: {exc.errors()[0]['msg']}") from exc


def sweep_frontiers(points: tuple[dict, ...], advice: Advice | None) -> list[Frontier]:
    """The advice's frontiers; without advice, the same frontiers of the sweep's finished `points` (records)
    over measured memory only."""
    if advice is not None:
        return advice.pareto
    return frontiers([to_point(r) for r in points], "output_throughput", lambda p: p.memory_bytes,
                     MEASURED_MEMORY_NOTE)
