"""`tune --model A --model B [--mix 0.5,0.5]`: several models on one device.

1. Each model is tuned as `tune` tunes one (tune/pipeline.py), its batch cap searched on the cores it will get:
   the device's cores split evenly, each model on cores of its own. Its directory is `OUT/<model>/`.
2. The placement: each model one engine at its B_opt's cap, its KV cache sized for that cap alone, on its cores,
   checked to fit the device's memory, each engine given its share of it (advise/memory_map.py).
3. Measured with every model loaded at once, beside time-sharing and each model alone (sweep/colocation.py):
   the interference is measured, not assumed. Each model's run is judged by its own SLO, as the BCA judged its
   batch caps; a model that misses it there is warned about.
4. The objective, the mix's capacity: the placement served again and the largest total request rate of the mix
   searched at which every model keeps --attainment of its requests within its SLO, applied to each request as
   tune's capacity step applies it (sweep/mix_capacity.py).

`OUT/placement.json` holds the plan, the memory map and the measurement, `OUT/report.html` shows them,
`OUT/ray-serve.yaml` and `OUT/ray-serve-llm.yaml` the placement on Ray Serve; the summary ends with the `serve`
command that runs it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from paretoserve.advise import Advice, AdviseConfig
from paretoserve.advise.advice_file import AdviceFileError, read_plan
from paretoserve.advise.memory_map import MemoryMap, MemoryMapError, ModelMemory, memory_map
from paretoserve.advise.placement_view import PLACEMENT_FILE
from paretoserve.advise.ray_config import write_ray_configs_models
from paretoserve.bench.slo import Slo
from paretoserve.engine.config import available_cores
from paretoserve.report import write_placement_report
from paretoserve.results.placement import MixCapacityFigures
from paretoserve.results.setup import ReplicaSetup
from paretoserve.sweep.colocation import (
    ColocatedModel,
    ColocationConfig,
    ColocationResult,
    ColocationRuns,
    LiveColocation,
    arrangements,
    measure_colocation,
)
from paretoserve.sweep.mix_capacity import MixLoad, mix_capacity
from paretoserve.sweep.rate_search import RateSearchConfig, rounded
from paretoserve.sweep.runner import PointRuns
from paretoserve.tune.capacity_step import capacity_slo
from paretoserve.tune.config import TuneConfig, TuneError
from paretoserve.tune.pipeline import run_tune

# The mix's capacity search: coarser than `capacity`'s (5 %, 10 runs), so that a two-model plan stays within
# minutes; no re-measures: a run of tens of requests leaves every passing rate's interval holding 99 %, so one
# re-measure would go to the first rate that passed, not to the edge.
MIX_RESOLUTION = 0.1
MIX_RUNS = 5
MIX_REMEASURES = 0


@dataclass(frozen=True)
class PlacementConfig:
    """Several models placed on one device: `base` holds every setting but the model, threads and directory."""

    base: TuneConfig
    models: tuple[str, ...]
    mix: tuple[float, ...]  # each model's share of the requests, summing to 1
    cores: int | None = None  # the device's cores; None = those this process may use
    advices: tuple[AdviseConfig, ...] = ()  # each model's advice settings (its own --slo); () = base.advice for all
    attainment: float = 0.99  # share of each model's requests within its SLO at the mix's capacity

    def __post_init__(self) -> None:
        if len(set(self.models)) != len(self.models):
            raise TuneError(f"--model: each model once; got {', '.join(self.models)}")
        if len(self.mix) != len(self.models):
            raise TuneError(f"--mix gives {len(self.mix)} shares for {len(self.models)} models: one per --model")
        if self.advices and len(self.advices) != len(self.models):
            raise TuneError(f"--slo: {len(self.advices)} for {len(self.models)} models: one for all or one per --model")
        if not 0 < self.attainment < 1:
            raise TuneError(f"--attainment must be in (0, 1), a share of requests; got {self.attainment!r}")
        if self.cores_each < 1:
            raise TuneError(f"--model: {len(self.models)} models need a core each, on cores of their own; this "
                            f"machine has {self.device_cores}")

    @property
    def advice_each(self) -> tuple[AdviseConfig, ...]:
        return self.advices or tuple(self.base.advice for _ in self.models)

    @property
    def device_cores(self) -> int:
        return self.cores or available_cores()

    @property
    def cores_each(self) -> int:
        """Cores each model gets: the device's split evenly."""
        return self.device_cores // len(self.models)


@dataclass
class PlacementResult:
    advices: list[Advice]  # each model's, in --model order
    colocation: ColocationResult
    memory: MemoryMap  # the device's memory, each model's part
    path: Path  # placement.json
    report: Path  # OUT/report.html: the memory map, each model's curve, the arrangements, the mix's capacity
    mix: MixCapacityFigures | None  # the mix's capacity; None when not searched
    serve_command: str
    ray_configs: list[Path]  # ray-serve.yaml and ray-serve-llm.yaml: the placement on Ray Serve
    wall_s: float
    runs: dict[str, int]  # engine runs by step: each model's tune (re-measures included), the arrangements, the rates

    @property
    def time_to_plan(self) -> str:
        """The wall time and the runs it took, in words."""
        return (f"time to plan: {self.wall_s / 60:.1f} min, {sum(self.runs.values())} runs ("
                + ", ".join(f"{n} {step.replace('_', ' ')}" for step, n in self.runs.items()) + ")")


def model_dir(out: Path, model: str) -> Path:
    """Where one model's tune lands: OUT/<the model's file stem, or its keyword>."""
    return out / re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(model).stem)


def run_placement(cfg: PlacementConfig, say: Callable[[str], None] = print, runs: PointRuns | None = None,
                  colocation: ColocationRuns | None = None) -> PlacementResult:
    """Tune each model on its share of the cores, place them together, measure it (see the module docstring)."""
    started, out, each = time.perf_counter(), cfg.base.out, cfg.cores_each
    tuned = []
    for model, advice in zip(cfg.models, cfg.advice_each, strict=True):
        say(f"tune: {model} on {each} of {cfg.device_cores} cores, in {model_dir(out, model)}")
        one = dataclasses.replace(cfg.base, model=model, threads=each, out=model_dir(out, model), verify=False,
                                  capacity=None, advice=advice)
        tuned.append(run_tune(one, say, runs))
    advices = [t.advice for t in tuned]
    memory = placed_memory(cfg.models, advices)
    for line in memory.lines():
        say(f"tune: {line}")
    placed = tuple(ColocatedModel(m.model, ReplicaSetup(m.max_batch, m.kv_tokens, each, m.replicas), share,
                                  slo=run_slo(a), mem_fraction=m.mem_fraction)
                   for m, a, share in zip(memory.models, advices, cfg.mix, strict=True))
    b = cfg.base
    measured = ColocationConfig(placed, b.bench, repeats=b.repeats, ctx_per_seq=b.ctx_per_seq, repack=b.repack,
                                cores=cfg.device_cores, engine=b.engine)
    say(f"tune: measuring the placement, time-sharing and each model alone, every model loaded at once for "
        f"{b.duration_s:g} s")
    colocation = colocation or LiveColocation(log_dir=out / "colocation")
    result = measure_colocation(measured, colocation, say=lambda line: say(f"tune: {line}"))
    judged = [capacity_slo(a, None) for a in advices]
    mix = search_mix_capacity(cfg, measured, result, colocation, judged, say)
    path = out / PLACEMENT_FILE
    command = serve_command(path)
    as_placed = [a.model_copy(update={"replica_plan": a.replica_plan.model_copy(update={
        "replicas": 1, "max_batch": a.b_opt_max_batch, "threads_per_replica": each})}) for a in advices]
    ray_configs = write_ray_configs_models([(a, t.table) for a, t in zip(as_placed, tuned, strict=True)], out,
                                           [m.mem_fraction for m in memory.models])
    wall_s = time.perf_counter() - started
    counted = {"tune_runs": sum(t.points_run + t.search.remeasure_runs for t in tuned), "arrangement_runs": result.runs,
               "mix_capacity_runs": len(mix.runs) if mix else 0}
    path.write_text(json.dumps({
        # each advice.json relative to placement.json, so that the directory can move
        "models": [{"model": m.model, "advice": f"{model_dir(out, m.model).name}/advice.json", "replicas": m.replicas,
                    "max_batch": m.max_batch, "kv_tokens": m.kv_tokens, "threads_per_replica": each,
                    "mem_fraction": m.mem_fraction, "share": share}
                   for m, share in zip(memory.models, cfg.mix, strict=True)],
        "cores": cfg.device_cores, "memory": memory.to_dict(), "colocation": result.figures().to_dict(),
        "mix_capacity": mix.to_dict() if mix else None, "serve": command, "wall_s": wall_s, "runs": counted},
        indent=2) + "\n")
    report = write_placement_report(path).html
    return PlacementResult(advices, result, memory, path, report, mix, command, ray_configs, wall_s, counted)


def run_slo(advice: Advice) -> Slo:
    """The advice's SLO as bench judges a run by it: its limits on the run's mean or percentiles, as the BCA
    judged each batch cap."""
    return Slo(",".join(str(limit) for limit in advice.slo.limits), tuple(advice.slo.limits))


def search_mix_capacity(cfg: PlacementConfig, measured: ColocationConfig, result: ColocationResult,
                        colocation: ColocationRuns, slos: list[Slo], say: Callable[[str], None]
                        ) -> MixCapacityFigures | None:
    """The placement served once more and the mix's capacity searched on it, each model's requests judged by its
    own per-request `slos`, bounded by the mix throughput it sustained at saturation; None when no model completed
    a request there (nothing to search below)."""
    ceiling = result.mix_rps("placement")
    if ceiling <= 0:
        say("tune: mix capacity not searched: a model of the placement completed no request at saturation")
        return None
    placement = arrangements(measured)[0]
    loads = [MixLoad(m.share, dataclasses.replace(load, mode="rate", rate=1.0, slo=slo))
             for m, load, slo in zip(measured.models, placement.loads, slos, strict=True)]
    search = RateSearchConfig(start_rps=ceiling, attainment=cfg.attainment, ceiling_rps=rounded(ceiling),
                              resolution=MIX_RESOLUTION, max_runs=MIX_RUNS, remeasure_budget=MIX_REMEASURES)
    say(f"tune: searching the mix's capacity below the {ceiling:.3g} req/s it sustained at saturation, "
        f"{cfg.base.duration_s:g} s per rate, {cfg.attainment:.0%} of each model's requests within its SLO")
    with colocation.serving(placement) as served:
        found = mix_capacity(loads, search, served, say=lambda line: say(f"tune: {line}"))
    for line in found.lines():
        say(f"tune: {line}")
    return found


def placed_memory(models: tuple[str, ...], advices: list[Advice]) -> MemoryMap:
    """Each model as placed (one engine at B_opt's cap, its KV sized for it) on the device the first advice names;
    a placement that does not fit is a TuneError."""
    parts = [ModelMemory(model, 1, a.b_opt_max_batch, a.commands.kv_tokens, a.memory.weights_bytes or 0.0,
                         a.kv_need_bytes or 0.0) for model, a in zip(models, advices, strict=True)]
    try:
        return memory_map(parts, advices[0].memory.device_memory_bytes)
    except MemoryMapError as exc:
        raise TuneError(str(exc)) from exc


def serve_command(path: Path) -> str:
    """The `paretoserve serve` line that runs the placement kept in `path`."""
    return f"paretoserve serve --plan {path} --port 8000"


def read_placement(path: Path, flag: str = "--plan") -> list[tuple[str, dict[str, float]]] | None:
    """Each model of a placement.json and its replica plan (its advice.json's, with the placement's replicas, cap,
    KV tokens, threads and memory share); None when the file is not a placement (read_plan then says what it is);
    AdviceFileError naming `flag` when a placement's entry is not whole."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "models" not in data:
        return None
    try:
        return [(m["model"], {**read_plan(path.parent / m["advice"], flag).given(),
                              **{k: int(m[k]) for k in ("replicas", "max_batch", "threads_per_replica")},
                              **{k: int(m[k]) for k in ("kv_tokens",) if m.get(k) is not None},
                              **{k: float(m[k]) for k in ("mem_fraction",) if m.get(k) is not None}})
                for m in data["models"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AdviceFileError(f"{flag}: {path} is not a placement that `tune --model A --model B` writes "
                              f"({type(exc).__name__}: {exc})") from exc
