"""The sweep's grid: which engine configurations to run, and the command line that starts each."""

from __future__ import annotations

import itertools
import shlex
from dataclasses import asdict, dataclass

from paretoserve.launch import embedded_engine_cmd

PLACEHOLDERS = ("model", "port", "max_batch", "kv_tokens", "threads", "replica")


class SweepSpecError(ValueError):
    """A sweep flag outside its allowed range; the message names the flag."""


def parse_int_list(flag: str, text: str, low: int, high: int) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); every value must lie in [low, high]."""
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(not low <= v <= high for v in values):
        raise SweepSpecError(f"{flag} must be a comma-separated list of integers in [{low}, {high}]; got {text!r}")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class PointConfig:
    """One engine configuration of the sweep."""

    max_batch: int
    kv_tokens: int | None  # None = the engine's own default
    threads: int
    replicas: int = 1

    def key(self) -> str:
        """A stable name for the point: what --resume matches finished points by."""
        return f"b{self.max_batch}-kv{self.kv_tokens or 'default'}-t{self.threads}-r{self.replicas}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep's points and how each engine is started."""

    model: str = "default"
    max_batch: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    kv_tokens: tuple[int | None, ...] = (None,)
    threads: tuple[int, ...] = (0,)
    replicas: tuple[int, ...] = (1,)
    ctx_per_seq: int | None = None  # embedded engine: longest prompt + output of the workload
    engine_cmd: str | None = None  # template for any other engine; None = the embedded engine
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    health_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if any(r != 1 for r in self.replicas):
            raise SweepSpecError("--replicas other than 1 needs the replica router (`paretoserve serve`), "
                                 "which is not built yet; use --replicas 1")
        if self.engine_cmd is not None:
            self._check_template()
        for flag, path in (("--health-path", self.health_path), ("--metrics-path", self.metrics_path)):
            if not path.startswith("/"):
                raise SweepSpecError(f"{flag} must start with '/'; got {path!r}")

    def _check_template(self) -> None:
        try:
            self.engine_cmd.format(**{name: 1 for name in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise SweepSpecError(f"--engine-cmd has an unknown or malformed placeholder ({exc}); "
                                 f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}") from exc
        if "{port}" not in self.engine_cmd:
            raise SweepSpecError("--engine-cmd must contain {port}, so each engine listens where it is probed")
        if "{kv_tokens}" in self.engine_cmd and None in self.kv_tokens:
            raise SweepSpecError("--engine-cmd uses {kv_tokens}: give --kv-tokens values")

    def points(self) -> list[PointConfig]:
        """The full grid, smallest batch first."""
        return [PointConfig(b, kv, t, r) for r, t, kv, b in
                itertools.product(self.replicas, self.threads, self.kv_tokens, self.max_batch)]

    def command(self, point: PointConfig, port: int, replica: int = 0) -> list[str]:
        """The argv that starts one engine of `point` listening on `port`."""
        if self.engine_cmd is None:
            args = ["--model", self.model, "--max-batch", str(point.max_batch), "--threads", str(point.threads)]
            if point.kv_tokens is not None:
                args += ["--kv-tokens", str(point.kv_tokens)]
            if self.ctx_per_seq is not None:
                args += ["--ctx-per-seq", str(self.ctx_per_seq)]
            return embedded_engine_cmd(port, "127.0.0.1", *args)
        return shlex.split(self.engine_cmd.format(model=self.model, port=port, max_batch=point.max_batch,
                                                  kv_tokens=point.kv_tokens, threads=point.threads, replica=replica))

    def as_dict(self) -> dict:
        return asdict(self)
