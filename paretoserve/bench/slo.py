"""Service-level objectives: `--slo 'tpot_ms<=30,p99_ttft_ms<=2000'`.

- A bare metric (`tpot_ms<=30`) is a per-request limit, as in vLLM's goodput: a request is good
  when its own value is within every such limit. A request's itl_ms is its largest gap.
- A prefixed metric (`p99_ttft_ms<=2000`; prefixes mean, median, p50, p90, p99) is a limit on the
  run's aggregate.

request_goodput = good completed requests per second (failed requests are never good);
slo_attainment = good requests / all requests; slo_met = every aggregate limit holds. With only
aggregate limits, every completed request is good.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
PREFIXES = ("mean", "median", "p50", "p90", "p99")
_TERM = re.compile(r"^\s*(?:(mean|median|p50|p90|p99)_)?(ttft_ms|tpot_ms|itl_ms|e2el_ms)\s*(<=|<)\s*([0-9.eE+-]+)\s*$")


class SloError(ValueError):
    """A malformed --slo; the message shows the allowed shape."""


@dataclass(frozen=True)
class Limit:
    metric: str  # ttft_ms | tpot_ms | itl_ms | e2el_ms
    bound: float
    stat: str | None = None  # None = per request; else mean | median | p50 | p90 | p99
    strict: bool = False  # '<' rather than '<='

    @property
    def name(self) -> str:
        return f"{self.stat}_{self.metric}" if self.stat else self.metric

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return value < self.bound if self.strict else value <= self.bound

    def __str__(self) -> str:
        return f"{self.name}{'<' if self.strict else '<='}{self.bound:g}"


def parse_slo(text: str) -> list[Limit]:
    limits = []
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
        limits.append(Limit(metric, bound, "p50" if stat == "median" else stat, op == "<"))
    return limits


def evaluate(limits: list[Limit], per_request: list[dict[str, float | None]], n_all: int, duration_s: float,
             aggregates: dict[str, float | None]) -> dict:
    """Goodput and attainment: `per_request` holds each completed request's ttft/tpot/itl/e2el (ms),
    `n_all` counts failed requests too, `aggregates` maps names such as p99_ttft_ms to run values."""
    own = [lim for lim in limits if lim.stat is None]
    good = sum(1 for r in per_request if all(lim.holds(r.get(lim.metric)) for lim in own))
    checks = []
    for lim in limits:
        if lim.stat is None:
            met = sum(1 for r in per_request if lim.holds(r.get(lim.metric)))
            checks.append({"limit": str(lim), "requests_within": met, "met": met == len(per_request) and n_all > 0})
        else:
            key = "median_" + lim.metric if lim.stat == "p50" else lim.name
            value = aggregates.get(key)
            checks.append({"limit": str(lim), "value": value, "met": lim.holds(value)})
    return {
        "slo": ",".join(str(lim) for lim in limits),
        "request_goodput": good / duration_s if duration_s > 0 else 0.0,
        "slo_attainment": good / n_all if n_all else 0.0,
        "slo_met": all(c["met"] for c in checks if "value" in c),
        "slo_checks": checks,
    }
