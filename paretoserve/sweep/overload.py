"""What a client sees past a plan's capacity: each request answered, refused (429/503 with Retry-After) or never
answered, from the request records of one bench run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REFUSED = ("HTTP 429", "HTTP 503")  # the overload answers a server gives, with Retry-After


@dataclass(frozen=True)
class Overload:
    """One run at `rate_rps` req/s; counts are requests, times seconds."""

    rate_rps: float
    sent: int
    completed: int
    refused: int  # 429 or 503
    refused_with_retry_after: int
    other_errors: int  # any other failure, a timeout included
    unanswered: int  # no answer at all before the client gave up (timed out, or the stream never ended)
    p99_e2el_s: float | None  # completed requests
    max_e2el_s: float | None
    slo_attainment: float | None  # share of all requests sent within the SLO
    first_error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """What the client saw, in words."""
        p99 = f", p99 latency {self.p99_e2el_s:.1f} s (max {self.max_e2el_s:.1f} s)" if self.p99_e2el_s else ""
        attained = f", {self.slo_attainment:.0%} within the SLO" if self.slo_attainment is not None else ""
        out = [f"{self.rate_rps:.4g} req/s: {self.sent} sent, {self.completed} completed{p99}{attained}",
               f"refused {self.refused} (429/503; {self.refused_with_retry_after} with Retry-After), other errors "
               f"{self.other_errors}, unanswered {self.unanswered}"]
        if self.first_error:
            out.append(f"first error: {self.first_error}")
        return out


def overload_of(result: dict, rate_rps: float) -> Overload:
    """Classify each request of a bench result (its `requests`) by how it ended."""
    requests = result.get("requests") or []
    errors = [r["error"] for r in requests if r.get("error")]
    refused = [e for e in errors if e.startswith(REFUSED)]
    unanswered = [r for r in requests if r.get("end_s") is None or "timed out" in (r.get("error") or "")]
    done = [r["end_s"] - r["intended_s"] for r in requests if not r.get("error") and r.get("end_s") is not None]
    return Overload(rate_rps=rate_rps, sent=len(requests), completed=len(done), refused=len(refused),
                    refused_with_retry_after=sum(1 for e in refused if "Retry-After" in e),
                    other_errors=len(errors) - len(refused), unanswered=len(unanswered),
                    p99_e2el_s=float(np.percentile(done, 99)) if done else None,
                    max_e2el_s=max(done) if done else None, slo_attainment=result.get("slo_attainment"),
                    first_error=errors[0] if errors else None)
