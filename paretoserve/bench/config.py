"""The knobs of one bench run, checked once when the config is built (messages name the flag)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from paretoserve.bench.access import Access
from paretoserve.bench.slo import Slo
from paretoserve.limits import IntRange, UserError

MODES = ("concurrency", "rate", "burst", "trace")
ARRIVALS = ("poisson", "constant", "gamma")
DATASETS = ("synthetic", "sharegpt:PATH", "jsonl:PATH", "trace:PATH")
ENDPOINTS = ("completions", "chat")
PROMPT_FORMATS = ("auto", "ids", "text")
ENERGY_SOURCES = ("auto", "nvml", "rapl", "estimated", "none")
DEFAULT_REQUESTS = 100  # ~1 minute at concurrency 8 with 128 + 128 tokens on a 2-core CPU


class BenchConfigError(UserError):
    """A bench knob outside its allowed range; the message names the flag and the range."""


@dataclass(frozen=True)
class TokenRange:
    """A token count: fixed (`64`) or drawn uniformly from an inclusive range (`32:128`)."""

    low: int
    high: int

    @classmethod
    def parse(cls, flag: str, text: str | int, limit: int = 1 << 20) -> "TokenRange":
        parts = str(text).split(":")
        try:
            low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
        except ValueError:
            low, high = 0, -1
        if len(parts) > 2 or not 1 <= low <= high <= limit:
            raise BenchConfigError(f"{flag} must be N or LO:HI with 1 <= LO <= HI <= {limit}; got {text!r}")
        return cls(low, high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"


@dataclass(frozen=True)
class BenchConfig:
    """Everything `paretoserve bench` needs; flags map one to one onto these fields."""

    url: str
    endpoint: str = "completions"
    served_model_name: str | None = None  # None = the first model the endpoint lists
    dataset: str = "synthetic"
    input_tokens: TokenRange = TokenRange(128, 128)
    output_tokens: TokenRange | None = None  # None = 128 for synthetic, the dataset's own lengths otherwise
    prompt_format: str = "auto"  # auto: token ids when the endpoint is a paretoserve engine
    tokenizer: str = "auto"
    requests: int | None = None  # None with no duration = DEFAULT_REQUESTS
    duration_s: float | None = None
    mode: str = "concurrency"
    concurrency: int = 8
    rate: float | None = None
    arrival: str = "poisson"
    burstiness: float | None = None  # --arrival gamma's shape: 1 = Poisson (the default), < 1 burstier, > 1 smoother
    ramp_up_s: float | None = None  # rate mode: the rate grows linearly from 0 to --rate over this many seconds
    seed: int = 0
    warmup: int = 0
    ignore_eos: bool = True
    temperature: float = 0.0
    request_timeout_s: float = 600.0
    slo: Slo | None = None  # the parsed --slo; a bare metric limits each request (goodput)
    metrics_path: str = "/metrics"
    sample_interval_s: float = 1.0
    engine_pids: tuple[int, ...] = ()  # empty = the process listening on a local URL's port, if any
    energy: str = "auto"
    watts_per_core: float | None = None  # None = energy.DEFAULT_WATTS_PER_CORE
    wait_quiet_s: float = 0.0  # before the measured run, wait up to this long for other processes to go quiet
    access: Access = Access()  # the API key and the TLS trust; none of it is written to a result

    def __post_init__(self) -> None:
        self._check_target()
        self._check_load()
        self._check_requests()

    def _check_target(self) -> None:
        """The server, the endpoint and what is sent to it."""
        if not self.url.startswith(("http://", "https://")):
            raise BenchConfigError(f"--url must start with http:// or https://; got {self.url!r}")
        self.access.check_url(self.url)
        _choice("--endpoint", self.endpoint, ENDPOINTS)
        _choice("--mode", self.mode, MODES)
        _choice("--arrival", self.arrival, ARRIVALS)
        _choice("--prompt-format", self.prompt_format, PROMPT_FORMATS)
        _choice("--energy", self.energy, ENERGY_SOURCES)
        if not (self.dataset == "synthetic" or self.dataset.startswith(("sharegpt:", "jsonl:", "trace:"))):
            raise BenchConfigError(f"--dataset must be {', '.join(DATASETS[:-1])} or {DATASETS[-1]}; "
                                   f"got {self.dataset!r}")
        if self.prompt_format == "ids" and self.endpoint == "chat":
            raise BenchConfigError("--prompt-format ids needs --endpoint completions (chat messages are text)")

    def _check_load(self) -> None:
        """How many requests, for how long and at what pace."""
        if self.requests is not None:
            IntRange(1, 10_000_000).check("--requests", self.requests, BenchConfigError)
        if self.duration_s is not None:
            _float_range("--duration", self.duration_s, 0.0, 7 * 86400.0, open_low=True)
        if self.mode == "burst" and self.requests is None and self.duration_s is not None:
            raise BenchConfigError("--mode burst sends everything at t=0: give --requests N, not --duration")
        IntRange(1, 100_000).check("--concurrency", self.concurrency, BenchConfigError)
        self._check_trace()
        if self.mode == "rate" and self.rate is None:
            raise BenchConfigError("--mode rate needs --rate R (requests per second)")
        if self.rate is not None:
            if self.mode != "rate":
                raise BenchConfigError(f"--rate applies to --mode rate only; got --mode {self.mode}")
            _float_range("--rate", self.rate, 0.0, 1e6, open_low=True)
        self._check_arrivals()

    def _check_trace(self) -> None:
        """A trace sets the schedule and the number of requests itself: nothing may contradict it."""
        trace = self.dataset.startswith("trace:")
        if self.mode == "trace" and not trace:
            raise BenchConfigError("--mode trace needs --dataset trace:PATH (a JSONL of timestamps and token counts)")
        if not trace:
            return
        if self.mode != "trace":
            raise BenchConfigError(f"--dataset trace:PATH replays the trace's own timestamps: leave out --mode "
                                   f"{self.mode} (or give --mode trace)")
        if self.rate is not None:
            raise BenchConfigError("--rate does not apply to --dataset trace:PATH: the trace's timestamps set the pace")
        if self.requests is not None:
            raise BenchConfigError("--requests does not apply to --dataset trace:PATH: each line is sent once "
                                   "(cut the replay short with --duration S)")

    def _check_arrivals(self) -> None:
        """Rate mode's arrival process: gamma's burstiness, the ramp-up."""
        if self.arrival == "gamma" and self.mode != "rate":
            raise BenchConfigError(f"--arrival gamma applies to --mode rate only; got --mode {self.mode}")
        if self.burstiness is not None:
            if self.arrival != "gamma":
                raise BenchConfigError(f"--burstiness applies to --arrival gamma only; got --arrival {self.arrival}")
            _float_range("--burstiness", self.burstiness, 0.0, 1000.0, open_low=True)
        if self.ramp_up_s is not None:
            if self.mode != "rate":
                raise BenchConfigError(f"--ramp-up applies to --mode rate only; got --mode {self.mode}")
            _float_range("--ramp-up", self.ramp_up_s, 0.0, 7 * 86400.0, open_low=True)
            if self.duration_s is not None and self.ramp_up_s > self.duration_s:
                raise BenchConfigError(f"--ramp-up {self.ramp_up_s:g} is longer than --duration {self.duration_s:g}: "
                                       "the rate would never reach --rate")

    def _check_requests(self) -> None:
        """Each request's settings, and the sampling of the engine."""
        IntRange(0, 2**63 - 1).check("--seed", self.seed, BenchConfigError)
        IntRange(0, 1_000_000).check("--warmup", self.warmup, BenchConfigError)
        _float_range("--temperature", self.temperature, 0.0, 2.0)
        _float_range("--request-timeout", self.request_timeout_s, 0.0, 7 * 86400.0, open_low=True)
        if not self.metrics_path.startswith("/"):
            raise BenchConfigError(f"--metrics-path must start with '/'; got {self.metrics_path!r}")
        _float_range("--sample-interval", self.sample_interval_s, 0.05, 60.0)
        for pid in self.engine_pids:
            IntRange(1, 2**31 - 1).check("--engine-pid", pid, BenchConfigError)
        if self.watts_per_core is not None:
            _float_range("--watts-per-core", self.watts_per_core, 0.0, 1000.0, open_low=True)
        _float_range("--wait-quiet", self.wait_quiet_s, 0.0, 3600.0)

    @property
    def request_limit(self) -> int | None:
        """How many requests to send: --requests, else the default unless --duration bounds the run (or a trace,
        which sends each of its lines once)."""
        if self.requests is None and self.duration_s is None and self.mode != "trace":
            return DEFAULT_REQUESTS
        return self.requests

    @property
    def trace_path(self) -> str | None:
        """The PATH of `--dataset trace:PATH`, else None."""
        return self.dataset.removeprefix("trace:") if self.dataset.startswith("trace:") else None

    @property
    def gamma_shape(self) -> float:
        """The shape of the gamma distribution of rate mode's gaps: --burstiness, 1 (Poisson) without it."""
        return 1.0 if self.burstiness is None else self.burstiness


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BenchConfigError(f"{flag} must be one of {', '.join(allowed)}; got {value!r}")


def _float_range(flag: str, value: float, low: float, high: float, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (low < value if open_low else low <= value)
    if not ok or value > high:
        bracket = "(" if open_low else "["
        raise BenchConfigError(f"{flag} must be in {bracket}{low:g}, {high:g}]; got {value!r}")
