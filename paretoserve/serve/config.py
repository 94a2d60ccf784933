"""What `serve` runs: the replicas (engine, replicas, threads, memory share) and the router's knobs.

`paretoserve serve` builds a ServeConfig from its flags and `--plan advice.json` (read in cli/serve_cmd.py
through advise/advice_file.py): a flag given on the command line wins over the file.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.engine.config import ConfigError, EngineConfig, threads_range
from paretoserve.engine_process import PROBE_TIMEOUT_S
from paretoserve.limits import IntRange, UserError
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.presets import EngineKnobs, EnginePreset, preset

# Placeholders an --engine-cmd template may use (the sweep's, plus each replica's device memory share).
PLACEHOLDERS = ("model", "port", "max_batch", "kv_tokens", "threads", "replica", "mem_fraction", "api_key")

# serve's own ranges; the embedded engine's come from its config (engine/config.py), an --engine-cmd's are these.
REPLICAS = IntRange(1, 256)
TEMPLATE_MAX_BATCH = IntRange(1, 65536)
TEMPLATE_KV_TOKENS = IntRange(16, 1 << 30)
MAX_BODY_BYTES = IntRange(1024, 1 << 30)
PORT = IntRange(0, 65535)
CLIENT_CONCURRENCY = IntRange(0, 1 << 20, "0 = no cap")
MAX_CLIENT_RATE = 1e6  # requests/s: far past what one router relays, so any real limit fits


class PlanError(UserError):
    """A replica plan that cannot run; the message names the flag (or plan field) and the allowed range."""


def knob_ranges(engine: str, engine_cmd: str | None) -> dict[str, IntRange]:
    """What each replica knob allows, by plan field: the preset's ranges (the embedded engine's are its
    own), or serve's for an --engine-cmd; threads never exceed the cores this process may use."""
    named = preset(engine)
    return {"replicas": REPLICAS, "max_batch": named.max_batch if engine_cmd is None else TEMPLATE_MAX_BATCH,
            "kv_tokens": named.kv_tokens if engine_cmd is None else TEMPLATE_KV_TOKENS,
            "threads_per_replica": threads_range()}


@dataclass(frozen=True)
class ServeConfig:
    """N copies of one engine on this machine, and how the supervisor keeps them alive."""

    replicas: int = 1
    max_batch: int = EngineConfig.max_batch  # each replica's cap: the embedded engine's default
    kv_tokens: int | None = None  # KV cells of each replica; None = the engine's default
    ctx_per_seq: int | None = None  # context per sequence, for presets that take it (not --engine-cmd)
    threads_per_replica: int = 0  # 0 = the usable cores divided evenly among the replicas
    model: str = "default"  # what the engine loads, or {model} of the template
    engine: str = "embedded"  # the preset that starts each replica (paretoserve/presets), unless engine_cmd
    engine_cmd: str | None = None  # template of any other engine
    repack: str = "auto"  # llama.cpp engines: weight repacking (engine/repack.py)
    pin: bool = True  # give each replica its own cores with sched_setaffinity
    mem_fraction: float = 0.9  # device memory all replicas share; each gets mem_fraction / replicas
    mps: bool = False  # run the CUDA MPS daemon while the replicas run
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    health_timeout_s: float = 300.0  # a replica not healthy this long after its start is restarted
    health_interval_s: float = 0.5
    health_check_timeout_s: float = PROBE_TIMEOUT_S  # one probe; a busy CPU engine can answer slowly
    unhealthy_after: int = 3  # failed probes in a row that take a healthy replica out
    restart_backoff_s: tuple[float, float] = (1.0, 30.0)  # first and longest wait before a restart
    stop_grace_s: float = 10.0  # SIGTERM -> SIGKILL
    api_key: str | None = field(default=None, repr=False)  # what each replica requires, where it takes a key

    def __post_init__(self) -> None:
        named = preset(self.engine)  # PresetError names --engine and its choices
        if self.engine_cmd is not None and self.engine != "embedded":
            raise PlanError(f"--engine {self.engine} and --engine-cmd both say how to start the engine: give one")
        for name, allowed in knob_ranges(self.engine, self.engine_cmd).items():
            if getattr(self, name) is not None:
                allowed.check("--" + name.replace("_", "-"), getattr(self, name), PlanError)
        if not 0.0 < self.mem_fraction <= 1.0:
            raise PlanError(f"--mem-fraction must be in (0, 1]; got {self.mem_fraction!r}")
        for flag, path in (("--health-path", self.health_path), ("--metrics-path", self.metrics_path)):
            if not path.startswith("/"):
                raise PlanError(f"{flag} must start with '/'; got {path!r}")
        if self.health_timeout_s <= 0:
            raise PlanError(f"--health-timeout must be > 0 seconds; got {self.health_timeout_s!r}")
        if self.engine_cmd is not None:
            self._check_template(self.engine_cmd)
        else:
            self._check_preset(named)

    def _check_preset(self, named: EnginePreset) -> None:
        """The knobs the preset cannot take, and for the embedded engine what its own config would refuse."""
        if self.repack not in named.repack_modes:
            raise PlanError(f"--repack {self.repack}: --engine {self.engine} takes "
                            f"{', '.join(named.repack_modes)}")
        if self.ctx_per_seq is not None and not named.takes_ctx_per_seq:
            raise PlanError(f"--ctx-per-seq: --engine {self.engine} has no context-per-sequence setting")
        if self.engine == "embedded":
            self._check_engine()  # what only the whole engine config tells: the KV room, the context

    def _check_engine(self) -> None:
        """Refuse now what each replica's embedded engine would refuse at its start (and be restarted for)."""
        try:
            EngineConfig(model_path=Path(self.model), model_name=self.model, max_batch=self.max_batch,
                         kv_tokens=self.kv_tokens, ctx_per_seq=self.ctx_per_seq, repack=self.repack)
        except ConfigError as exc:
            raise PlanError(str(exc)) from exc

    def _check_template(self, template: str) -> None:
        if self.repack != "auto":
            raise PlanError(f"--repack {self.repack} applies to the llama.cpp presets only; with --engine-cmd put "
                            "the engine's own flag (llama-server: --no-repack) in the template")
        try:
            template.format(**{name: 1 for name in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise PlanError(f"--engine-cmd has an unknown or malformed placeholder ({exc}); "
                            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}") from exc
        if "{port}" not in template:
            raise PlanError("--engine-cmd must contain {port}: each replica listens on its own port")
        if "{kv_tokens}" in template and self.kv_tokens is None:
            raise PlanError("--engine-cmd uses {kv_tokens}: give --kv-tokens")

    @property
    def mem_fraction_per_replica(self) -> float:
        """Each replica's share of device memory, rounded down to 0.001 so the shares never exceed the total."""
        return int(1000 * self.mem_fraction / self.replicas) / 1000

    @property
    def embedded(self) -> bool:
        """Each replica is paretoserve's own engine."""
        return self.engine == "embedded" and self.engine_cmd is None

    @property
    def takes_api_key(self) -> bool:
        """Whether each replica is started with `api_key`: its preset takes one, or the template has {api_key}."""
        if self.engine_cmd is not None:
            return "{api_key}" in self.engine_cmd
        named = preset(self.engine)
        return named.api_key_env is not None or named.api_key_flag is not None

    @property
    def env(self) -> dict[str, str]:
        """What the preset adds to each replica's environment (its API key among it, where it reads one there)."""
        if self.engine_cmd is not None:
            return {}
        named = preset(self.engine)
        keyed = {named.api_key_env: self.api_key} if self.api_key is not None and named.api_key_env else {}
        return {**named.env, **keyed}

    def command(self, replica: int, port: int, threads: int) -> list[str]:
        """The argv that starts replica number `replica` listening on `port` with `threads` threads."""
        if self.engine_cmd is not None:
            text = self.engine_cmd.format(model=self.model, port=port, max_batch=self.max_batch,
                                          kv_tokens=self.kv_tokens, threads=threads, replica=replica,
                                          mem_fraction=self.mem_fraction_per_replica, api_key=self.api_key or "")
            return shlex.split(text)
        named = preset(self.engine)
        argv = named.argv(EngineKnobs(
            model=self.model, port=port, max_batch=self.max_batch, kv_tokens=self.kv_tokens,
            ctx_per_seq=self.ctx_per_seq, threads=threads, mem_fraction=self.mem_fraction_per_replica,
            repack=self.repack))
        if self.api_key is not None and named.api_key_env is None and named.api_key_flag is not None:
            argv += [named.api_key_flag, self.api_key]
        return argv


@dataclass(frozen=True)
class RouterConfig:
    """The router's HTTP side."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20  # same limit as the embedded engine: a 2,048-token prompt is ~10 KB
    retry_after_s: int = 1  # what a 503 tells the client to wait
    drain_timeout_s: float = 30.0  # on SIGTERM / Ctrl-C, how long in-flight requests may take to finish
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0  # longest silence from a replica; non-streamed answers come whole at the end
    eject_s: float = 2.0  # a replica that refused a connection gets no requests for this long
    resume_streams: bool = True  # resume greedy streams elsewhere: the replicas are paretoserve engines
    api_keys: ApiKeys = ApiKeys()  # the clients' keys; none: every route open
    replica_key: str | None = field(default=None, repr=False)  # sent to the replicas; None: each client's own
    ssl_keyfile: str | None = None  # with ssl_certfile: the router serves https (uvicorn's TLS)
    ssl_certfile: str | None = None
    # Per client (API key, else address); off by default: the router cannot know a fair share, and one client
    # (bench, sweep, a gateway) often is the whole load.
    max_concurrent_per_client: int = 0  # generation requests in flight; 0 = no cap
    max_rate_per_client: float = 0.0  # new generation requests per second (bucket of max(1, rate)); 0 = no limit

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile is not None else "http"

    def __post_init__(self) -> None:
        PORT.check("--port", self.port, PlanError)
        MAX_BODY_BYTES.check("--max-body-bytes", self.max_body_bytes, PlanError)
        CLIENT_CONCURRENCY.check("--max-concurrent-per-client", self.max_concurrent_per_client, PlanError)
        if not 0 <= self.max_rate_per_client <= MAX_CLIENT_RATE:  # a NaN fails too
            raise PlanError(f"--max-rate-per-client must be in [0, {MAX_CLIENT_RATE:.0f}] requests/s (0 = no limit); "
                            f"got {self.max_rate_per_client!r}")
        if self.drain_timeout_s < 0:
            raise PlanError(f"--drain-timeout must be >= 0 seconds; got {self.drain_timeout_s!r}")
