"""What `tune` measures and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from paretoserve.advise import AdviseConfig
from paretoserve.advise.capacity import HEADROOM
from paretoserve.advise.traffic import Traffic
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.repeats import REPEATS
from paretoserve.bench.slo import Slo
from paretoserve.engine.config import EngineConfig, ctx_for, threads_range
from paretoserve.limits import IntRange, UserError
from paretoserve.presets import preset
from paretoserve.sweep.search import REMEASURE_BUDGET, SearchConfig
from paretoserve.sweep.session import POINT_URL

TOKENS = IntRange(1, 8192)  # --input-tokens and --output-tokens of every point


class TuneError(UserError):
    """A tune setting out of range; the message names the flag."""


@dataclass(frozen=True)
class CapacityStep:
    """After the plan is chosen: serve it, find the request rate it sustains under a per-request SLO
    (`paretoserve capacity`), size it for `traffic`, and replay a trace traffic through it."""

    traffic: Traffic | None = None  # None: the capacity alone
    trace: Path | None = None  # the trace the traffic was read from: its lengths are the workload, replayed
    attainment: float = 0.99  # share of requests within the SLO
    slo: Slo | None = None  # per-request limits; None: the advice's limits per request, plus DEFAULT_TTFT_MS
    headroom: float = HEADROOM  # spare share of capacity every replica count keeps
    replay_speed: float = 1.0  # the trace's time divided by this in the replay
    max_runs: int = 10  # rates the search may run
    remeasure_budget: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.attainment < 1:
            raise TuneError(f"--attainment must be in (0, 1), a share of requests; got {self.attainment!r}")
        if not 0 <= self.headroom <= 10:
            raise TuneError(f"--headroom must be in [0, 10], a share of capacity kept spare; got {self.headroom!r}")
        if not 0.01 <= self.replay_speed <= 1000:
            raise TuneError(f"--replay-speed must be in [0.01, 1000]; got {self.replay_speed!r}")
        if self.slo is not None and not self.slo.per_request:
            raise TuneError("--capacity-slo: capacity judges each request on its own; give at least one bare limit "
                            "such as 'ttft_ms<=2000,tpot_ms<=100'")


@dataclass(frozen=True)
class TuneConfig:
    """One engine preset on one model, searched over its batch cap, then the replica plan verified."""

    model: str = "default"
    engine: str = "embedded"  # the preset that runs every point (paretoserve/presets)
    out: Path = Path("tune")
    max_batch: int = EngineConfig.max_batch  # largest batch cap the search may run: the embedded engine's default
    threads: int = 0  # threads of the single engine; 0 = every core
    repack: str = "auto"  # the engine's --repack: llama.cpp's weight repacking (engine/repack.py)
    input_tokens: int = 32
    output_tokens: int = 32
    duration_s: float = 15.0  # seconds of closed-loop load per point (then in-flight requests drain)
    min_gain: float = SearchConfig.min_gain  # a doubling that adds less throughput ends the climb (the plateau)
    remeasure_budget: int = SearchConfig.remeasure_budget  # extra runs for doublings whose gain is within noise
    verify: bool = True  # measure the replica plan next to the best single engine
    repeats: int = 1  # runs of each point (back to back in the search), each on a freshly started engine
    wait_quiet_s: float = 0.0  # before each point's measured run, wait up to this long for a quiet machine
    resume: bool = False
    capacity: CapacityStep | None = None  # None: no capacity step
    advice: AdviseConfig = field(default_factory=AdviseConfig)

    def __post_init__(self) -> None:
        preset(self.engine).max_batch.check("--max-batch", self.max_batch, TuneError)  # the engine's own range
        threads_range().check("--threads", self.threads, TuneError)
        REPEATS.check("--repeats", self.repeats, TuneError)
        REMEASURE_BUDGET.check("--remeasure-budget", self.remeasure_budget, TuneError)
        _ = self.bench  # built now: the workload's own checks (--wait-quiet among them) before anything runs
        TOKENS.check("--input-tokens", self.input_tokens, TuneError)
        TOKENS.check("--output-tokens", self.output_tokens, TuneError)
        if not 1.0 <= self.duration_s <= 3600.0:
            raise TuneError(f"--duration must be in [1, 3600] seconds; got {self.duration_s:g}")
        if not 0.0 <= self.min_gain <= 10.0:
            raise TuneError(f"--min-gain must be in [0, 10]; got {self.min_gain:g}")

    @property
    def ctx_per_seq(self) -> int:
        """KV cells one sequence needs: its prompt (plus a BOS token) and its output."""
        return ctx_for(self.input_tokens, self.output_tokens)

    @cached_property
    def bench(self) -> BenchConfig:
        """The workload every point runs: fixed lengths, ignore_eos, closed loop at the point's cap."""
        return BenchConfig(url=POINT_URL, input_tokens=TokenRange(self.input_tokens, self.input_tokens),
                           output_tokens=TokenRange(self.output_tokens, self.output_tokens),
                           duration_s=self.duration_s, mode="concurrency", warmup=1, wait_quiet_s=self.wait_quiet_s)
