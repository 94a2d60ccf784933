"""The capacity of a mix: the largest total request rate R at which every model, sent share_i x R requests/s
open-loop at once, keeps at least the target share of its requests within its own SLO.

The search is capacity's (rate_search.py), driven with one verdict per total rate: the mix meets when its worst
model does, so the generator is sent the RateRun of the model furthest from the target (a run limit missed, else
the lowest attainment), and re-measures where that model's interval holds the target. The ceiling is the mix
throughput the placement sustained at saturation (colocation.py): no open-loop rate above what it completes in a
closed loop is sustained. Each model's runs at one rate are pooled as capacity pools them (capacity.pooled).

Measuring is passed in (`MixRuns`): `LiveMixRuns` loads a served placement; tests answer from figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Protocol

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.runner import run_bench
from paretoserve.results.placement import MixCapacityFigures, MixModelRun, MixRun
from paretoserve.results.rate_run import RateRun, rate_key, to_rate_run
from paretoserve.sweep.asked import drive
from paretoserve.sweep.capacity import pooled
from paretoserve.sweep.rate_search import CapacityError, RateSearchConfig, capacity_search


@dataclass(frozen=True)
class MixLoad:
    """One model of the mix: its share of the requests and its workload (served name and per-request SLO set)."""

    share: float  # of the total rate, in (0, 1]
    bench: BenchConfig

    @property
    def name(self) -> str:
        return self.bench.served_model_name or ""


class MixRuns(Protocol):
    """How every model's load at one total rate gets measured at once: each bench result, in load order."""

    def run(self, loads: list[BenchConfig]) -> list[dict]: ...


def worst(runs: list[RateRun], target: float) -> RateRun:
    """The model's run furthest from meeting `target`: one whose run limit failed, else the lowest attainment."""
    return min(runs, key=lambda run: (run.meets(target), run.slo_met, run.attainment))


def mix_capacity(loads: list[MixLoad], search: RateSearchConfig, runs: MixRuns,
                 say: Callable[[str], None] = lambda line: None) -> MixCapacityFigures:
    """Search the total rate of the mix (see the module docstring); a search that finds no rate meeting the
    target has no capacity, and is no error: the placement was measured all the same."""
    held: dict[tuple[float, str], dict] = {}
    by_rate: dict[float, MixRun] = {}

    def measure(rate: float, extra: int) -> RateRun:
        seeded = [dataclasses.replace(m.bench, mode="rate", rate=m.share * rate, seed=m.bench.seed + extra)
                  for m in loads]
        per_model = []
        for m, result in zip(loads, runs.run(seeded), strict=True):
            record = pooled(held.get((rate, m.name)), result, rate_key(rate), {"request_rate": m.share * rate})
            held[rate, m.name] = record
            per_model.append(to_rate_run(record))
        verdict = worst(per_model, search.attainment)
        by_rate[rate] = MixRun(rate, verdict.meets(search.attainment), tuple(
            MixModelRun(m.name, run.rate_rps, run.attainment, run.meets(search.attainment),
                        m.bench.slo.text if m.bench.slo else None, m.share, run.total, run.failed, run.p99_ttft_ms,
                        run.p99_tpot_ms) for m, run in zip(loads, per_model, strict=True)))
        said = ", ".join(f"{m.name} {m.attainment:.1%} of {m.requests}" for m in by_rate[rate].models)
        say(f"mix capacity: {rate:.4g} req/s: {'met' if by_rate[rate].met else 'missed'} ({said})")
        return dataclasses.replace(verdict, rate_rps=rate)

    try:
        found = drive(capacity_search(search), measure)
    except CapacityError as exc:
        return MixCapacityFigures(None, search.attainment, _by_rate(by_rate), None, str(exc))
    return MixCapacityFigures(found.capacity_rps, search.attainment, _by_rate(by_rate), found.failing_rps,
                              found.stop_reason)


def _by_rate(runs: dict[float, MixRun]) -> tuple[MixRun, ...]:
    return tuple(runs[rate] for rate in sorted(runs))


@dataclass(frozen=True)
class LiveMixRuns:
    """Every model's load sent at once to a served placement at `url` (each load's warm-up included)."""

    url: str
    engine_pids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # by served name: what the sampler reads

    def run(self, loads: list[BenchConfig]) -> list[dict]:
        aimed = [dataclasses.replace(load, url=self.url, engine_pids=self.engine_pids.get(load.served_model_name or "",
                                                                                          load.engine_pids))
                 for load in loads]
        return asyncio.run(_together(aimed))


async def _together(loads: list[BenchConfig]) -> list[dict]:
    return list(await asyncio.gather(*(run_bench(load, keep_requests=False) for load in loads)))
