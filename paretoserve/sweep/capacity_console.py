"""`paretoserve capacity`'s terminal output: the budget before the first run, the knee and the runs after."""

from __future__ import annotations

from paretoserve.sweep.capacity import CapacityConfig, CapacityReport


def budget_line(config: CapacityConfig) -> str:
    """The most runs the session may make, said before it makes any."""
    b = config.bench
    per_run = "the whole trace, scaled in rate" if config.trace else (
        f"{b.request_limit} requests" if b.request_limit else f"{b.duration_s:g} s")
    measured = config.start_rps is not None or config.ceiling_rps is not None or config.trace
    guess = "" if measured else ", plus 1 closed-loop run for the first guess"
    overload = f", plus 1 at {config.overload:g}x the capacity" if config.overload else ""
    return (f"capacity: budget of at most {config.max_runs} rates + {config.remeasure_budget} re-measures"
            f"{guess}{overload}; each run {per_run}; target {config.attainment:.0%} of requests within "
            f"{b.slo}, resolution {config.resolution:.0%}")


def report_lines(report: CapacityReport, config: CapacityConfig) -> list[str]:
    """The knee, how it was found, and what a client sees past it."""
    r, knee = report.result, report.result.knee
    out = [f"first guess: {report.guess}"]
    if knee is not None:
        low, high = knee.interval()
        above = "" if r.failing_rps is None else f"; {r.failing_rps:.4g} req/s " + (
            "is the closed-loop throughput, which no open-loop rate can exceed" if r.at_ceiling else "does not")
        out.append(f"capacity: {knee.rate_rps:.4g} req/s with {knee.attainment:.1%} of {knee.total} requests within "
                   f"the SLO (95 % interval {low:.1%}..{high:.1%}){above}")
    out.append(f"runs: {len(r.measured)} rates ({', '.join(f'{x:.4g}' for x in r.measured)}) + {r.remeasure_runs} "
               f"re-measures; {report.runs} made now, wall time {report.wall_s:.0f} s; stopped on {r.stop_reason}")
    out += [f"re-measured {line}" for line in r.remeasured]
    if report.overload is not None:
        out += [f"at {config.overload:g}x the capacity: {line}" for line in report.overload.lines()]
    out.append(f"runs kept in {config.out}")
    return out


def report_json(report: CapacityReport, config: CapacityConfig) -> dict:
    """The result as `capacity --json` prints it; rates in req/s."""
    r, knee = report.result, report.result.knee
    return {"capacity_rps": r.capacity_rps, "failing_rps": r.failing_rps, "attainment_target": config.attainment,
            "attainment": knee.attainment if knee else None, "attainment_ci95": list(knee.interval()) if knee else None,
            "slo": str(config.bench.slo), "first_guess": report.guess, "stop_reason": r.stop_reason,
            "rates": r.measured, "remeasured": r.remeasured, "runs_made": report.runs, "wall_s": report.wall_s,
            "overload": report.overload.to_dict() if report.overload else None, "out": str(config.out)}
