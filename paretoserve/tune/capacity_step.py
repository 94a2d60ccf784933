"""tune's capacity step: serve the chosen plan, find the request rate it sustains under a per-request SLO
(`paretoserve capacity`'s session, its runs kept in `OUT/capacity`), replay a trace traffic through it
(`OUT/replay.json`), and size it for the traffic (advise/capacity.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable

from paretoserve.advise import Advice
from paretoserve.advise.capacity import CapacityAdvice, ReplayCheck, capacity_advice
from paretoserve.bench.config import BenchConfig
from paretoserve.bench.slo import Slo, parse_slo
from paretoserve.results.store import is_finished
from paretoserve.sweep.bench_runs import BenchRuns
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession
from paretoserve.sweep.capacity_console import budget_line, report_lines
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.rate_search import rounded
from paretoserve.sweep.replay import replay_trace
from paretoserve.sweep.runner import PointRuns
from paretoserve.tune.config import CapacityStep, TuneConfig

CAPACITY_DIR = "capacity"
REPLAY_FILE = "replay.json"
DEFAULT_TTFT_MS = 2000.0  # MLPerf Inference's TTFT limit for its LLM server scenario: a request waits no longer


def capacity_slo(advice: Advice, given: Slo | None) -> Slo:
    """What each request of the capacity runs is judged by: `given`, else each of the advice's limits (bounds on
    a run's mean or percentile) as the same bound on every request, plus ttft_ms <= DEFAULT_TTFT_MS when they
    set no TTFT bound (past the capacity requests queue, and only their TTFT shows it)."""
    if given is not None:
        return given
    terms = []
    for limit in advice.slo.limits:
        metric = limit.field.split("_", 1)[1]  # mean_tpot_ms -> tpot_ms
        terms.append(f"{metric}{'<' if limit.strict else '<='}{limit.bound_ms:.4g}")
    if not any(term.startswith("ttft_ms") for term in terms):
        terms.append(f"ttft_ms<={DEFAULT_TTFT_MS:g}")
    return parse_slo(",".join(terms))


def capacity_config(step: CapacityStep, cfg: TuneConfig, advice: Advice, plan_record: dict | None) -> CapacityConfig:
    """The capacity session of the advised plan: tune's workload (or the trace's) sent open-loop, the first rate
    the plan's own closed-loop request throughput where tune measured it, which also bounds the search."""
    plan = advice.replica_plan
    bench = dataclasses.replace(cfg.bench, mode="rate", rate=1.0, slo=capacity_slo(advice, step.slo))
    if step.trace is not None:  # the trace's own lengths and times, scaled in rate by the session
        bench = dataclasses.replace(bench, mode="trace", rate=None, duration_s=None, output_tokens=None,
                                    dataset=f"trace:{step.trace}")
    measured = plan_record if plan_record is not None and is_finished(plan_record) else None
    ceiling = measured.get("request_throughput") if measured and step.trace is None else None
    return CapacityConfig(bench=bench, out=cfg.out / CAPACITY_DIR, attainment=step.attainment,
                          max_runs=step.max_runs, remeasure_budget=step.remeasure_budget,
                          ceiling_rps=rounded(ceiling) if ceiling else None,
                          concurrency=plan.max_batch * plan.replicas, resume=cfg.resume)


def run_capacity(step: CapacityStep, cfg: TuneConfig, spec: SweepSpec, advice: Advice, plan_record: dict | None,
                 runs: PointRuns, say: Callable[[str], None]) -> CapacityAdvice:
    """Measure the advised plan's capacity on `runs` (the plan served once for every run), then size it."""
    plan = advice.replica_plan
    config = capacity_config(step, cfg, advice, plan_record)
    say(f"tune: measuring the capacity of {plan.replicas} x cap {plan.max_batch}, "
        f"{budget_line(config).removeprefix('capacity: ')}")
    replay = None
    with contextlib.ExitStack() as stack:  # the plan starts at the first run: a resumed step that holds all starts none
        served = ServedOnFirstRun(lambda: stack.enter_context(runs.serving(spec, plan.setup(),
                                                                           cfg.out / "capacity.log")))
        report = CapacitySession(config, served, echo=lambda line: say(f"tune: {line.strip()}")).run()
        for line in report_lines(report, config):
            say(f"tune: {line}")
        if step.trace is not None and cfg.verify:
            replay = replay_check(step, config, cfg.out, served, say)
    sized = capacity_advice(config.out, plan.replicas, plan.max_batch, step.traffic, step.headroom)
    return sized.model_copy(update={"replay": replay})


class ServedOnFirstRun:
    """BenchRuns that serve the plan (`start`) when the first run is asked for, then send every run to it."""

    def __init__(self, start: Callable[[], BenchRuns]) -> None:
        self.start = start
        self.served: BenchRuns | None = None

    def run(self, bench: BenchConfig) -> dict:
        if self.served is None:
            self.served = self.start()
        return self.served.run(bench)


def replay_check(step: CapacityStep, config: CapacityConfig, out: Path, served: BenchRuns,
                 say: Callable[[str], None]) -> ReplayCheck:
    """The traffic's trace replayed at --replay-speed through the served plan, kept in OUT/replay.json (a
    resumed tune reads it back rather than replaying again)."""
    path = out / REPLAY_FILE
    if config.resume and path.is_file():
        kept = json.loads(path.read_text())
        say(f"tune: replay kept from an earlier run in {path}")
    else:
        assert step.trace is not None  # asked for only with a trace traffic
        report = replay_trace(config.bench, step.trace, out, speed=step.replay_speed, attainment=step.attainment,
                              runs=served, echo=lambda line: say(f"tune: {line}"))
        for line in report.lines():
            say(f"tune: {line}")
        kept = report.to_dict()
        path.write_text(json.dumps(kept, indent=2) + "\n")
    return ReplayCheck(file=str(path), **{k: kept[k] for k in ("speed", "sent", "failed", "attainment",
                                                                 "goal_met")})

