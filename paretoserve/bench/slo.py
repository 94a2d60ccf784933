"""Service-level objectives: `--slo 'tpot_ms<=30,p99_ttft_ms<=2000'`, parsed once into an `Slo`.

A limit's scope is its type:
- `RequestLimit`, written as a bare metric (`tpot_ms<=30`): a bound on each request's own value, as in
  vLLM's goodput. A request is good when its own value is within every such limit; a request's itl_ms
  is its largest gap.
- `RunLimit`, written with a prefix (`p99_ttft_ms<=2000`; prefixes mean, median, p50, p90, p99): a bound
  on a statistic over the run, a summary field such as mean_tpot_ms or median_ttft_ms.

bench judges requests: request_goodput = good completed requests per second (failed requests are never
good); slo_attainment = good requests / all requests; slo_met = every run limit holds. With only run limits,
every completed request is good. A reader that has only run summaries (the BCA over sweep points) takes
`Slo.over_run()`, in which each per-request limit becomes the same bound on the run's mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from paretoserve.limits import UserError

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
PREFIXES = ("mean", "median", "p50", "p90", "p99")
_TERM = re.compile(r"^\s*(?:(mean|median|p50|p90|p99)_)?(ttft_ms|tpot_ms|itl_ms|e2el_ms)\s*(<=|<)\s*([0-9.eE+-]+)\s*$")


class SloError(UserError):
    """A malformed --slo; the message shows the allowed shape."""


def field_name(stat: str | None, metric: str) -> str:
    """Summary field of a latency statistic: (None, 'tpot_ms') -> 'mean_tpot_ms', ('p50', ..) -> 'median_...'."""
    stat = {None: "mean", "p50": "median"}.get(stat, stat)
    return f"{stat}_{metric}"


def _within(value: float | None, bound: float, strict: bool) -> bool:
    if value is None:
        return False
    return value < bound if strict else value <= bound


def _op(strict: bool) -> str:
    return "<" if strict else "<="


@dataclass(frozen=True)
class RequestLimit:
    """A bound in ms on each request's own value of `metric`."""

    metric: str  # ttft_ms | tpot_ms | itl_ms | e2el_ms
    bound_ms: float
    strict: bool = False  # '<' rather than '<='

    def holds(self, value: float | None) -> bool:
        return _within(value, self.bound_ms, self.strict)

    def on_mean(self) -> RunLimit:
        """The same bound on the run's mean, for a reader that has no per-request values."""
        return RunLimit(field=field_name(None, self.metric), bound_ms=self.bound_ms, strict=self.strict)

    def __str__(self) -> str:
        return f"{self.metric}{_op(self.strict)}{self.bound_ms:g}"


class RunLimit(BaseModel):
    """A bound in ms on a statistic over the run: a summary field (mean_tpot_ms, median_ttft_ms, p99_itl_ms, ...)."""

    model_config = ConfigDict(frozen=True)

    field: str  # the run statistic bounded: a summary field such as mean_tpot_ms or p99_ttft_ms
    bound_ms: float  # the bound, ms
    strict: bool = False  # '<' rather than '<='
    origin: str = "--slo"  # "--slo" or how a relative bound was derived

    def holds(self, value: float | None) -> bool:
        return _within(value, self.bound_ms, self.strict)

    def __str__(self) -> str:
        return f"{self.field}{_op(self.strict)}{self.bound_ms:.4g}"


Limit = RequestLimit | RunLimit


class Slo:
    """A parsed --slo: the text as given and its limits in that order.

    Not a dataclass, so a config holding it keeps it whole through `dataclasses.asdict`; `str()` is the text."""

    __slots__ = ("text", "limits")

    def __init__(self, text: str, limits: tuple[Limit, ...]) -> None:
        self.text = text
        self.limits = limits

    @property
    def per_request(self) -> tuple[RequestLimit, ...]:
        return tuple(lim for lim in self.limits if isinstance(lim, RequestLimit))

    def over_run(self) -> tuple[RunLimit, ...]:
        """Every limit as a bound on the run's summary: a per-request limit becomes one on the run's mean."""
        return tuple(lim.on_mean() if isinstance(lim, RequestLimit) else lim for lim in self.limits)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Slo({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slo) and (self.text, self.limits) == (other.text, other.limits)

    def __hash__(self) -> int:
        return hash((self.text, self.limits))


def parse_slo(text: str) -> Slo:
    limits: list[Limit] = []
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise SloError(f"--slo: cannot read {term.strip()!r}; use METRIC<=MS terms joined by commas, METRIC one of "
                           f"{', '.join(METRICS)}, optionally prefixed {'_, '.join(PREFIXES)}_ "
                           "(e.g. 'tpot_ms<=30,p99_ttft_ms<=2000')")
        stat, metric, op, number = m.groups()
        try:
            bound = float(number)
        except ValueError:
            raise SloError(f"--slo: {number!r} in {term.strip()!r} is not a number") from None
        if not bound > 0:
            raise SloError(f"--slo: the limit in {term.strip()!r} must be > 0")
        strict = op == "<"
        limits.append(RequestLimit(metric, bound, strict) if stat is None else
                      RunLimit(field=field_name(stat, metric), bound_ms=bound, strict=strict))
    return Slo(text, tuple(limits))


def label(limit: Limit) -> str:
    """How bench's result names a limit: the bound in full, a median as p50_ (p50_ttft_ms<=2000)."""
    if isinstance(limit, RequestLimit):
        return str(limit)
    name = "p50_" + limit.field.removeprefix("median_") if limit.field.startswith("median_") else limit.field
    return f"{name}{_op(limit.strict)}{limit.bound_ms:g}"


def evaluate(slo: Slo, per_request: list[dict[str, float | None]], n_all: int, duration_s: float,
             aggregates: dict[str, float | None]) -> dict:
    """Goodput and attainment: `per_request` holds each completed request's ttft/tpot/itl/e2el (ms),
    `n_all` counts failed requests too, `aggregates` maps summary fields such as p99_ttft_ms to run values."""
    own = slo.per_request
    good = sum(1 for r in per_request if all(lim.holds(r.get(lim.metric)) for lim in own))
    checks = []
    for lim in slo.limits:
        if isinstance(lim, RequestLimit):
            met = sum(1 for r in per_request if lim.holds(r.get(lim.metric)))
            checks.append({"limit": label(lim), "requests_within": met, "met": met == len(per_request) and n_all > 0})
        else:
            value = aggregates.get(lim.field)
            checks.append({"limit": label(lim), "value": value, "met": lim.holds(value)})
    return {
        "slo": ",".join(label(lim) for lim in slo.limits),
        "request_goodput": good / duration_s if duration_s > 0 else 0.0,
        "slo_attainment": good / n_all if n_all else 0.0,
        "slo_met": all(c["met"] for c in checks if "value" in c),
        "slo_checks": checks,
    }
