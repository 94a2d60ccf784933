"""One capacity run: a points.jsonl record of kind `capacity` read once into a typed `RateRun`.

A rate run sends requests open-loop at `rate_rps` and judges each against the SLO's per-request limits; its
attainment is the share of all requests sent (failed and refused ones included) that met every limit, pooled
over the runs made at that rate. The interval is Wilson's score interval over those requests, which stays
inside 0..1 and is not zero-width at 100 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from paretoserve.results.store import CAPACITY_KIND

Z_95 = 1.96  # two-sided 95 % normal quantile


def rate_key(rate_rps: float) -> str:
    """The points.jsonl key of the runs at one rate: four significant digits, as the search rounds rates."""
    return f"rate-{rate_rps:.4g}"


def wilson(good: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The 95 % score interval of a proportion good / total (0..1); (0, 1) when nothing was sent."""
    if total <= 0:
        return 0.0, 1.0
    p = good / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))  # p itself, whatever the rounding


@dataclass(frozen=True)
class RateRun:
    """The runs at one request rate, pooled; times in ms, rates in requests per second."""

    key: str
    rate_rps: float  # offered: the rate the arrivals were drawn at
    good: int  # requests within every per-request limit
    total: int  # requests sent, failed ones included
    slo_met: bool = True  # every run limit of the SLO (p99_..., mean_...) held as well
    request_throughput: float = 0.0  # completed requests per second
    failed: int = 0
    p99_ttft_ms: float | None = None
    p99_tpot_ms: float | None = None
    repeats: int = 1

    @property
    def attainment(self) -> float:
        return self.good / self.total if self.total else 0.0

    def interval(self) -> tuple[float, float]:
        return wilson(self.good, self.total)

    def meets(self, target: float) -> bool:
        """At least `target` (0..1) of the requests met the SLO, and every run limit held."""
        return self.slo_met and self.total > 0 and self.attainment >= target

    def near(self, target: float) -> bool:
        """The attainment's 95 % interval holds `target`: one more run could turn the verdict."""
        low, high = self.interval()
        return low < target <= high


def to_rate_run(record: dict) -> RateRun:
    """A finished capacity record (kind `capacity`, config.request_rate) as a RateRun."""
    if record.get("kind") != CAPACITY_KIND or not isinstance(record.get("config"), dict):
        raise ValueError(f"{record.get('key')!r} is not a capacity run")
    return RateRun(key=record["key"], rate_rps=float(record["config"]["request_rate"]),
                   good=int(record.get("slo_good") or 0), total=int(record.get("slo_requests") or 0),
                   slo_met=record.get("slo_met") is not False,
                   request_throughput=float(record.get("request_throughput") or 0.0),
                   failed=int(record.get("failed") or 0), p99_ttft_ms=record.get("p99_ttft_ms"),
                   p99_tpot_ms=record.get("p99_tpot_ms"), repeats=int(record.get("repeats") or 1))
