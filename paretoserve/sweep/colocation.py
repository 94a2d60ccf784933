"""Several models on one device, measured: the placement (each model's replicas on cores of their own, every model
behind one router), time-sharing (one engine per model, every engine on every core) and each model alone on the
device, with every model of an arrangement loaded at once, each at saturation (a closed loop of its cap x replicas
requests, the same token lengths for all).

The mix throughput of an arrangement is the largest total request rate R at which each model i gets its share
mix_i x R within the rate it sustained there: R = min_i(rate_i / mix_i), in requests/s, where rate_i is the model's
request throughput (its goodput where it has an SLO). A model's interference is its placement rate over its solo
rate. "One device per model" is each model alone on a device of its own: N devices, whose mix throughput is
min_i(solo_i / mix_i). Time-sharing's split of the cores follows the load, not the mix: at saturation the engines
compete as equals, so its figure is what the scheduler gave each model with every model at full load.

Measuring is passed in (`ColocationRuns`): `LiveColocation` serves each arrangement with `paretoserve serve` and
loads it with `run_bench`; tests answer from figures, so the sequencing and the arithmetic run without engines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol, Sequence

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.metrics import GOODPUT
from paretoserve.bench.slo import Slo
from paretoserve.engine.config import available_cores
from paretoserve.engine_process import LaunchError
from paretoserve.limits import IntRange, UserError
from paretoserve.results.placement import ColocationFigures, ModelRates
from paretoserve.results.setup import ReplicaSetup
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.fleet import place, served_name
from paretoserve.serve.replica_server import ReplicaServer
from paretoserve.sweep.mix_capacity import LiveMixRuns, MixRuns

KINDS = ("placement", "time-sharing", "solo")  # the arrangements, in the order each round runs them
REPEATS = IntRange(1, 100)


class ColocationError(UserError):
    """Models, a mix or a load that cannot be measured together; the message names the flag."""


@dataclass(frozen=True)
class ColocatedModel:
    """One model of the mix: what its engines load, its replicas in the placement, its share of the requests."""

    model: str  # `default`, `smollm2` or a GGUF path
    setup: ReplicaSetup  # batch cap, KV tokens, threads per replica (its own cores in the placement), replicas
    share: float  # of the mix's requests, in (0, 1]
    slo: Slo | None = None  # its own limits (else the bench's): its rate is then its goodput
    mem_fraction: float | None = None  # its share of the device's memory (GPU engines); None: an equal share


@dataclass(frozen=True)
class ColocationConfig:
    """The models, the load each gets (`bench`: token lengths, `duration_s`, warm-up, seed; its URL, served name and
    concurrency are set per run), the rounds, and the engines' context per sequence and repacking."""

    models: tuple[ColocatedModel, ...]
    bench: BenchConfig
    repeats: int = 1  # rounds; each runs every arrangement once, so drift on the machine hits all alike
    ctx_per_seq: int | None = None  # tokens; None = the engine's default
    repack: str = "auto"
    cores: int | None = None  # the device's cores; None = those this process may use
    engine: str = "embedded"  # the preset every model's engines run (paretoserve/presets)

    def __post_init__(self) -> None:
        if len(self.models) < 2:
            raise ColocationError(f"--model: give at least two models to place together; got {len(self.models)}")
        shares = [m.share for m in self.models]
        if not all(0 < s <= 1 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ColocationError("--mix: each model's share must be in (0, 1] and the shares must sum to 1; got "
                                  + ",".join(f"{s:g}" for s in shares))
        if self.bench.mode != "concurrency" or self.bench.duration_s is None or self.bench.requests is not None:
            raise ColocationError("the models are loaded in a closed loop over one window: give --duration S "
                                  "(not --requests) and --mode concurrency")
        REPEATS.check("--repeats", self.repeats, ColocationError)


@dataclass(frozen=True)
class Arrangement:
    """What one run serves behind one router, and each model's load, sent at once (`loads[i]` for `plans[i]`)."""

    kind: str  # placement, time-sharing or solo
    plans: tuple[ServeConfig, ...]
    loads: tuple[BenchConfig, ...]  # served name and saturating concurrency set; the URL is the runner's

    @property
    def label(self) -> str:
        return f"solo {self.loads[0].served_model_name}" if self.kind == "solo" else self.kind


class ColocationRuns(Protocol):
    """How an arrangement gets measured: real engines (`LiveColocation`), or recorded figures in tests."""

    def run(self, arrangement: Arrangement) -> list[dict]:
        """Each model's bench result (`run_bench`'s fields), in plan order; LaunchError where it cannot start."""

    def serving(self, arrangement: Arrangement) -> ContextManager[MixRuns]:
        """The arrangement served while the block runs, loaded through the runs it gives (the mix capacity)."""


def mix_throughput(rates: Sequence[float], shares: Sequence[float]) -> float:
    """The largest total request rate R (requests/s) with share_i x R <= rate_i for every model:
    min_i(rate_i / share_i)."""
    return min(rate / share for rate, share in zip(rates, shares, strict=True))


def arrangements(cfg: ColocationConfig) -> list[Arrangement]:
    """The placement, time-sharing, then each model solo: the plans each serves, and the same load per model."""
    cores = cfg.cores or available_cores()
    try:
        placed = tuple(ServeConfig(model=m.model, replicas=m.setup.replicas, max_batch=m.setup.max_batch,
                                   kv_tokens=m.setup.kv_tokens, threads_per_replica=m.setup.threads,
                                   ctx_per_seq=cfg.ctx_per_seq, repack=cfg.repack,
                                   mem_fraction=m.mem_fraction or ServeConfig.mem_fraction / len(cfg.models),
                                   engine=cfg.engine)
                       for m in cfg.models)
        place(list(placed), list(range(cores)))  # refuses a placement that needs more cores than there are
    except PlanError as exc:
        raise ColocationError(str(exc)) from exc
    loads = tuple(dataclasses.replace(cfg.bench, served_model_name=served_name(plan), slo=m.slo or cfg.bench.slo,
                                      concurrency=m.setup.max_batch * m.setup.replicas)  # saturation: every slot
                  for m, plan in zip(cfg.models, placed, strict=True))
    shared = tuple(dataclasses.replace(p, pin=False, threads_per_replica=cores) for p in placed)
    alone = [dataclasses.replace(p, threads_per_replica=0) for p in placed]  # the cores shared among its replicas
    return [Arrangement("placement", placed, loads), Arrangement("time-sharing", shared, loads),
            *(Arrangement("solo", (plan,), (load,)) for plan, load in zip(alone, loads, strict=True))]


@dataclass(frozen=True)
class ModelFigures:
    """One model's rates (requests/s; goodput where it has an SLO) in each arrangement, one per round."""

    name: str  # the name it is served under
    share: float
    metric: str  # request_throughput, or request_goodput
    rounds: dict[str, tuple[float, ...]]  # by arrangement kind

    def rate(self, kind: str) -> float:
        """Median over the rounds, requests/s."""
        return statistics.median(self.rounds[kind])

    @property
    def interference(self) -> float | None:
        """Placement rate over solo rate (1: the others' load cost it nothing beyond its share of the cores)."""
        solo = self.rate("solo")
        return self.rate("placement") / solo if solo > 0 else None


@dataclass(frozen=True)
class ColocationResult:
    """Each model's figures, each arrangement's mix throughput, and what measuring took."""

    models: tuple[ModelFigures, ...]
    runs: int  # arrangements served and loaded
    wall_s: float  # s, every run's start-up included
    warnings: tuple[str, ...] = ()

    def mix_rps(self, kind: str) -> float:
        """The arrangement's mix throughput, requests/s (`mix_throughput`); for solo, over one device per model."""
        return mix_throughput([m.rate(kind) for m in self.models], [m.share for m in self.models])

    @property
    def devices(self) -> int:
        """Devices that "one device per model" needs."""
        return len(self.models)

    def lines(self) -> list[str]:
        """The figures for the terminal."""
        rounds = len(self.models[0].rounds["placement"])
        out = [f"{len(self.models)} models at mix {'/'.join(f'{m.share:.2f}' for m in self.models)}, requests/s "
               f"(median of {rounds} round{'s' if rounds > 1 else ''}; {self.runs} runs in {self.wall_s / 60:.1f} min)",
               f"  {'model':<28} {'share':>5} {'placement':>9} {'time-sharing':>12} {'solo':>7} {'placement/solo':>14}"]
        for m in self.models:
            out.append(f"  {m.name:<28} {m.share:>5.2f} {m.rate('placement'):>9.2f} {m.rate('time-sharing'):>12.2f} "
                       f"{m.rate('solo'):>7.2f} {_ratio(m.interference):>14}")
        c = self.figures()
        out += ["mix throughput, min_i(rate_i / share_i):",
                f"  placement (one device)        {c.placement_rps:7.2f} req/s",
                f"  time-sharing (one device)     {c.time_sharing_rps:7.2f} req/s   placement / time-sharing "
                f"{_ratio(c.ratio(c.time_sharing_rps))}",
                f"  one device per model: needs {c.devices} devices, {c.solo_rps:.2f} req/s "
                f"({c.solo_per_device_rps:.2f} per device)   placement / per device "
                f"{_ratio(c.ratio(c.solo_per_device_rps))}"]
        return out + [f"warning: {w}" for w in self.warnings]

    def figures(self) -> ColocationFigures:
        """The medians and mix throughputs as placement.json keeps them (results/placement.py)."""
        return ColocationFigures(
            tuple(ModelRates(m.name, m.share, m.metric, m.rate("placement"), m.rate("time-sharing"), m.rate("solo"),
                             m.interference, {_key(kind): list(v) for kind, v in m.rounds.items()})
                  for m in self.models),
            self.mix_rps("placement"), self.mix_rps("time-sharing"), self.mix_rps("solo"), self.devices, self.runs,
            self.wall_s, self.warnings)


def _key(kind: str) -> str:
    """The arrangement's name as a JSON key (time_sharing)."""
    return kind.replace("-", "_")


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def measure_colocation(cfg: ColocationConfig, runs: ColocationRuns,
                       say: Callable[[str], None] = lambda line: None) -> ColocationResult:
    """Run every arrangement once per round (placement, time-sharing, each solo; then again), saying each run's
    rates, and return the figures. LaunchError or BenchError from a run ends the measurement."""
    plan, started = arrangements(cfg), time.perf_counter()
    names = [load.served_model_name or "" for load in plan[0].loads]
    rates: dict[tuple[str, str], list[float]] = {}
    metrics: dict[str, str] = {}
    warnings: list[str] = []
    for round_ in range(cfg.repeats):
        for arrangement in plan:
            said = []
            for load, result in zip(arrangement.loads, runs.run(arrangement), strict=True):
                name = load.served_model_name or ""
                metrics[name] = GOODPUT if load.slo else "request_throughput"
                rate = float(result.get(metrics[name]) or 0.0)
                rates.setdefault((arrangement.kind, name), []).append(rate)
                said.append(f"{name} {rate:.2f}")
                if load.slo is not None and result.get("slo_met") is False:
                    warnings.append(f"{arrangement.label}, round {round_ + 1}: {name} missed its SLO "
                                    f"({load.slo.text}) at saturation")
                if result.get("failed"):
                    warnings.append(f"{arrangement.label}, round {round_ + 1}: {name} had {result['failed']} failed "
                                    "requests (left out of its rate)")
            say(f"{arrangement.label} (round {round_ + 1}/{cfg.repeats}): {', '.join(said)} req/s")
    models = tuple(ModelFigures(name, m.share, metrics[name], {kind: tuple(rates[kind, name]) for kind in KINDS})
                   for name, m in zip(names, cfg.models, strict=True))
    return ColocationResult(models, len(plan) * cfg.repeats, time.perf_counter() - started, tuple(warnings))


@dataclass(frozen=True)
class LiveColocation:
    """Each arrangement served by `paretoserve serve` on this machine (one router, every model's replicas), warmed
    up with one request per slot of every model at once, then every model loaded at once for the measured window."""

    log_dir: Path | None = None  # each run's serve log and replica logs, under the arrangement's label
    health_timeout_s: float = 600.0

    def run(self, arrangement: Arrangement) -> list[dict]:
        with self.serving(arrangement) as served:
            # The warm-up apart (at least one request per slot), so that every model's window starts at one moment.
            served.run([dataclasses.replace(load, duration_s=None, warmup=0, requests=max(load.concurrency,
                                                                                           load.warmup))
                        for load in arrangement.loads])
            return served.run([dataclasses.replace(load, warmup=0) for load in arrangement.loads])

    @contextlib.contextmanager
    def serving(self, arrangement: Arrangement) -> Iterator[LiveMixRuns]:
        """The arrangement served until the block ends, as runs that load every model at once; LaunchError when a
        replica failed and was restarted meanwhile (its figures would mix two engines)."""
        logs = self.log_dir / arrangement.label.replace(" ", "-") if self.log_dir is not None else None
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
        with ReplicaServer(list(arrangement.plans), log_path=logs / "serve.log" if logs else None,
                           log_dir=logs) as server:
            server.wait_healthy(self.health_timeout_s)
            health = server.refresh() or {}
            yield LiveMixRuns(server.base_url, {name: _pids(health, name) for name in
                                                (load.served_model_name or "" for load in arrangement.loads)})
            if server.restarts():
                raise LaunchError(f"{arrangement.label}: a replica failed and was restarted during the run:\n"
                                  f"{server.output_tail(1500)}")


def _pids(health: dict, name: str | None) -> tuple[int, ...]:
    """The engine processes of the model served as `name` (every replica where the router serves one model)."""
    return tuple(r["pid"] for r in health.get("replicas", []) if r.get("pid") and r.get("model", name) == name)
