"""`advise(sweep_dir, AdviseConfig) -> Advice`: the one entry point `advise`, `report` and `tune` share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, PlainValidator, field_validator

from paretoserve.advise.bca import RELATIVE_METRIC, Verdict, choose_batch, resolve_limits
from paretoserve.advise.calibrated_roofline import RooflineSummary, calibrated_roofline
from paretoserve.advise.capacity import CapacityAdvice
from paretoserve.advise.commands import Commands, commands
from paretoserve.advise.memory import MemoryAdvice, device_memory, memory_advice
from paretoserve.advise.pareto import Frontier, frontiers
from paretoserve.advise.replicas import ReplicaPlan, replica_plan
from paretoserve.advise.table import AdviseError, Point, SweepTable, load_table
from paretoserve.bench.metrics import ThroughputMetric
from paretoserve.bench.slo import RunLimit, Slo, parse_slo

PAPER_SLO_MULTIPLE = 3.0  # "Mind the Memory Gap": 3 x mean TPOT at B=32 when no SLO is given


def _slo(value: object) -> Slo | None:
    """--slo as text or already parsed; parsed here, once, so a typo fails before any engine runs."""
    if value is None or isinstance(value, Slo):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be text such as 'tpot_ms<=30'; got {value!r}")
    return parse_slo(value) if value else None  # an SloError is a ValueError: pydantic names the field


# Held parsed; dumped as the text it was given (what sweep.json keeps of a tune, and compares on --resume).
ParsedSlo = Annotated[Slo | None, PlainValidator(_slo), PlainSerializer(lambda slo: slo.text if slo else None)]


class AdviseConfig(BaseModel):
    """What to advise for. With neither `slo` nor `slo_multiple`, the paper's 3 x mean TPOT at B=32 applies."""

    # absolute limits, e.g. 'tpot_ms<=30,p99_ttft_ms<=2000', judged over the run: a bare metric is the run's mean
    slo: ParsedSlo = None
    slo_multiple: float | None = None  # relative limit: multiple x slo_metric of the run nearest slo_ref_batch
    slo_ref_batch: int = Field(32, ge=1)
    slo_metric: str = "tpot"  # tpot | itl | ttft | e2el, optionally p99_ / median_ / p90_ prefixed
    min_efficiency: float = 0.0  # floor on T(B) / (B x T(1)), exclusive
    device_memory: str | int | None = None  # bytes or '64GiB' / '80GB'; None = the sweep's environment
    throughput_metric: ThroughputMetric = "output_throughput"
    max_replicas: int = Field(8, ge=1)  # most replicas a predicted plan may use
    min_replica_gain: float = Field(0.05, ge=0.0)  # share of throughput more replicas must add to be chosen
    advice_path: str = "advice.json"  # what the `paretoserve serve --plan` line refers to
    hardware: str | None = None  # a roofline hardware name or YAML: predict unmeasured replica plans with it
    model_geometry: str | None = None  # the model's .gguf or config.json for the roofline (default: the sweep's)

    @property
    def relative_multiple(self) -> float | None:
        """The relative limit's multiple: as given, the paper's 3 when no SLO is given at all, else none."""
        return self.slo_multiple if self.slo_multiple is not None or self.slo else PAPER_SLO_MULTIPLE

    def limits(self, points: list[Point]) -> list[RunLimit]:
        """The limits each of these single-replica points is judged by (the relative one taken from them)."""
        return resolve_limits(points, self.slo, self.relative_multiple, self.slo_ref_batch, self.slo_metric)

    @field_validator("slo_multiple")
    @classmethod
    def _multiple_positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"must be > 0; got {value:g}")
        return value

    @field_validator("min_efficiency")
    @classmethod
    def _efficiency_fraction(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"must be in [0, 1); got {value:g}")
        return value

    @field_validator("slo_metric")
    @classmethod
    def _metric_known(cls, value: str) -> str:
        if not RELATIVE_METRIC.match(value.strip()):
            raise ValueError(f"cannot read {value!r}; use tpot, itl, ttft or e2el, optionally prefixed mean_, "
                             "median_, p90_ or p99_ (e.g. 'p99_itl')")
        return value


class SloSummary(BaseModel):
    text: str  # the limits as one line, e.g. 'mean_tpot_ms<=19.77 (3 x mean_tpot_ms at B=32 (6.59 ms))'
    limits: list[RunLimit]  # bounds on run statistics: --slo's (a bare metric on the run's mean), then the relative one
    min_efficiency: float  # floor on T(B) / (B x T(1)) a point must beat (--min-efficiency; 0 = none)


class Advice(BaseModel):
    """Everything `advise --json` prints (this model's model_dump()); bytes, ms, and per-second throughput."""

    sweep_dir: str  # the sweep directory the advice was read from
    model: str | None  # as the sweep's spec names it (several joined by ', '); None: not recorded
    device: str | None  # the sweep's first GPU, else its CPU model; None: not recorded
    throughput_metric: str  # output_throughput | total_token_throughput (tokens/s) | request_throughput (requests/s)
    b_opt: int  # the measured batch size the BCA picks
    b_opt_max_batch: int  # the batch cap of the run that reached it
    b_opt_key: str  # points.jsonl key of the point B_opt was measured in
    slo: SloSummary  # the limits every single-replica point was judged by
    rejected: list[Verdict]  # every larger batch and why
    batches: list[Verdict]  # every single-replica point, smallest batch first
    throughput_at_b_opt: float  # B_opt's point, in throughput_metric's unit
    b_opt_certainty: str | None = None  # over repeats, e.g. "SLO met within the 95 % interval over 3 repeats"
    best_throughput: float  # the most any single-replica point reached, within the SLO or not
    throughput_fraction_at_b_opt: float  # throughput_at_b_opt / best_throughput, 0..1
    kv_need_bytes: float | None  # KV cache B_opt needs, bytes (memory.kv_need_bytes)
    kv_need_fraction: float | None  # of the default KV allocation
    freed_bytes: float | None  # default KV allocation - kv_need_bytes, bytes (memory.freed_bytes)
    freed_fraction: float | None  # of device memory
    memory: MemoryAdvice  # the arithmetic behind kv_need_bytes and freed_bytes
    pareto: list[Frontier]  # frontiers: throughput vs median/p99 TPOT and ITL and vs memory; energy/token vs throughput
    replica_plan: ReplicaPlan  # the advised N replicas x batch cap, with the options it was chosen from
    commands: Commands  # launch lines for B_opt and for the replica plan
    roofline: RooflineSummary | None = None  # the calibrated roofline behind predicted replica plans
    capacity: CapacityAdvice | None = None  # measured capacity, what a traffic needs (tune, advise --capacity-dir)


def _memory_of(weights_bytes: float | None):
    """Memory a point occupied: its measured peak, else its KV peak plus one copy of the weights per replica."""
    def memory(p: Point) -> float | None:
        if p.memory_bytes is not None:
            return p.memory_bytes
        if p.kv_peak_bytes is not None and weights_bytes is not None:
            return p.kv_peak_bytes + p.replicas * weights_bytes
        return None
    return memory


def certainty_text(verdict: Verdict) -> str | None:
    """How sure the B_opt verdict is, in words; None for a single run."""
    if verdict.certainty is None:
        return None
    how = "within the 95 % interval" if verdict.certainty == "within the interval" else \
        "at the mean only, not across its 95 % interval"
    return f"SLO met {how} over {verdict.repeats} repeats"


def advise_table(table: SweepTable, config: AdviseConfig) -> Advice:
    """The advice for an already loaded sweep table (see `advise`)."""
    singles = table.singles()
    if not singles:
        raise AdviseError(f"DIR: {table.directory} has only replica points; the BCA needs single-engine points")
    limits = config.limits(singles)
    choice = choose_batch(singles, limits, config.min_efficiency, config.throughput_metric)
    point = next(p for p in singles if p.key == choice.point_key)
    device_bytes, device_source = device_memory(table, config.device_memory)
    memory = memory_advice(table, point, device_bytes, device_source)
    roofline, scale = calibrated_roofline(table, config.hardware, config.model_geometry) \
        if config.hardware else (None, None)
    plan = replica_plan(table, point, limits, config.throughput_metric, memory, config.max_replicas,
                        config.min_replica_gain, scale)
    memory_note = "measured peak (device memory or engine RSS), else KV peak + weights per replica"
    return Advice(
        sweep_dir=table.directory, model=table.model, device=table.device_name,
        throughput_metric=config.throughput_metric, b_opt=choice.b_opt, b_opt_max_batch=point.max_batch,
        b_opt_key=point.key,
        slo=SloSummary(text=", ".join(f"{lim} ({lim.origin})" for lim in limits), limits=limits,
                       min_efficiency=config.min_efficiency),
        rejected=choice.rejected, batches=choice.verdicts, throughput_at_b_opt=choice.throughput_at_b_opt,
        b_opt_certainty=certainty_text(next(v for v in choice.verdicts if v.key == point.key)),
        best_throughput=choice.best_throughput, throughput_fraction_at_b_opt=choice.throughput_fraction_at_b_opt,
        kv_need_bytes=memory.kv_need_bytes, kv_need_fraction=memory.kv_need_fraction,
        freed_bytes=memory.freed_bytes, freed_fraction=memory.freed_fraction, memory=memory,
        pareto=frontiers(table.points, config.throughput_metric, _memory_of(memory.weights_bytes), memory_note),
        replica_plan=plan, commands=commands(table, choice.b_opt, plan, memory, config.advice_path),
        roofline=roofline)


def advise(sweep_dir: str | Path, config: AdviseConfig | None = None) -> Advice:
    """Advice for the sweep directory `sweep_dir`: B_opt under the SLO, its KV need and the memory it frees,
    the Pareto frontiers, the replica plan and the launch commands. Raises AdviseError (one line naming
    the flag or file) on bad input. `Advice.model_dump()` is exactly what `paretoserve advise --json` prints."""
    return advise_table(load_table(sweep_dir), config or AdviseConfig())
