"""What a placement.json says of its measurement, typed, for the code that writes it and the code that reads it:
each model's rate in each arrangement (`colocation`: sweep/colocation.py measures it) and the mix's capacity under
every model's SLO (`mix_capacity`: sweep/mix_capacity.py searches it); advise and the report show them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelRates:
    """One model's rate in each arrangement, requests/s (its goodput where it has an SLO; median of the rounds)."""

    name: str  # the name it is served under
    share: float  # of the mix's requests
    metric: str  # request_throughput or request_goodput
    placement_rps: float
    time_sharing_rps: float
    solo_rps: float  # alone on the device
    interference: float | None  # placement rate over solo rate; None where solo was 0
    rounds: dict[str, list[float]] = field(default_factory=dict)  # every round's rate, by arrangement (time_sharing)

    @classmethod
    def from_dict(cls, data: dict) -> ModelRates:
        return cls(str(data["name"]), float(data["share"]), str(data["metric"]), float(data["placement_rps"]),
                   float(data["time_sharing_rps"]), float(data["solo_rps"]), _optional(data.get("interference")),
                   {str(k): [float(v) for v in vs] for k, vs in (data.get("rounds") or {}).items()})


@dataclass(frozen=True)
class ColocationFigures:
    """Each arrangement's mix throughput (requests/s: the largest total rate at which every model gets its share)
    and each model's rates."""

    models: tuple[ModelRates, ...]
    placement_rps: float  # every model on the device at once, on cores of its own
    time_sharing_rps: float  # every model on the device at once, every engine on every core
    solo_rps: float  # one device per model: over `devices` devices
    devices: int  # devices "one device per model" needs
    runs: int
    wall_s: float
    warnings: tuple[str, ...] = ()

    @property
    def solo_per_device_rps(self) -> float:
        """One device per model's mix throughput over its devices, requests/s per device."""
        return self.solo_rps / self.devices

    def ratio(self, other_rps: float) -> float | None:
        """The placement's mix throughput over another's (None where that one is 0)."""
        return self.placement_rps / other_rps if other_rps > 0 else None

    @classmethod
    def from_dict(cls, data: dict) -> ColocationFigures:
        mix = data["mix_throughput_rps"]
        return cls(tuple(ModelRates.from_dict(m) for m in data["models"]), float(mix["placement"]),
                   float(mix["time_sharing"]), float(mix["solo"]), int(data["devices"]), int(data.get("runs") or 0),
                   float(data.get("wall_s") or 0.0), tuple(map(str, data.get("warnings") or ())))

    def to_dict(self) -> dict:
        return {"source": "measured",
                "mix_throughput_rps": {"placement": self.placement_rps, "time_sharing": self.time_sharing_rps,
                                       "solo": self.solo_rps, "solo_per_device": self.solo_per_device_rps},
                "devices": self.devices, "placement_over_time_sharing": self.ratio(self.time_sharing_rps),
                "placement_over_solo_per_device": self.ratio(self.solo_per_device_rps),
                "models": [asdict(m) for m in self.models], "runs": self.runs, "wall_s": self.wall_s,
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class MixModelRun:
    """One model at one total rate of the mix: its own rate (requests/s), the share of its requests within its SLO
    (pooled over the runs at that rate), and the latencies that judge it (ms)."""

    name: str
    rate_rps: float
    attainment: float  # 0..1
    met: bool  # at least the target share within the SLO, and every run limit held
    slo: str | None
    share: float = 0.0  # of the mix's requests
    requests: int = 0  # sent, failed ones included
    failed: int = 0
    p99_ttft_ms: float | None = None
    p99_tpot_ms: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> MixModelRun:
        return cls(str(data["name"]), float(data["rate_rps"]), float(data["attainment"]), bool(data["met"]),
                   None if data.get("slo") is None else str(data["slo"]), float(data.get("share") or 0.0),
                   int(data.get("requests") or 0), int(data.get("failed") or 0), _optional(data.get("p99_ttft_ms")),
                   _optional(data.get("p99_tpot_ms")))


@dataclass(frozen=True)
class MixRun:
    """One total rate of the mix (requests/s), met when every model met its target there."""

    rate_rps: float
    met: bool
    models: tuple[MixModelRun, ...]

    @classmethod
    def from_dict(cls, data: dict) -> MixRun:
        return cls(float(data["rate_rps"]), bool(data["met"]), tuple(MixModelRun.from_dict(m) for m in data["models"]))


@dataclass(frozen=True)
class MixCapacityFigures:
    """The largest total rate of the mix (requests/s) at which every model keeps `attainment` of its requests within
    its SLO (None: even the lowest rate tried missed), and every rate tried."""

    capacity_rps: float | None
    attainment: float  # the target share of each model's requests, 0..1
    runs: tuple[MixRun, ...]  # by rate, lowest first (the search ran them in its own order)
    failing_rps: float | None = None  # the lowest rate that missed, where one did
    stop_reason: str | None = None

    def lines(self) -> list[str]:
        """The result for the terminal."""
        head = (f"mix capacity: {self.capacity_rps:.3g} req/s in all with every model's requests "
                f"{self.attainment:.0%} within its SLO" if self.capacity_rps is not None
                else f"mix capacity: none found ({self.stop_reason})")
        out = [head]
        for run in self.runs:
            models = ", ".join(f"{m.name} {m.rate_rps:.3g} req/s {m.attainment:.1%}{'' if m.met else ' (missed)'}"
                               for m in run.models)
            out.append(f"  {run.rate_rps:8.4g} req/s: {'met' if run.met else 'missed'} ({models})")
        return out + ([f"  {self.stop_reason}"] if self.capacity_rps is not None and self.stop_reason else [])

    @classmethod
    def from_dict(cls, data: dict) -> MixCapacityFigures:
        return cls(_optional(data["capacity_rps"]), float(data["attainment"]),
                   tuple(sorted((MixRun.from_dict(r) for r in data["runs"]), key=lambda r: r.rate_rps)),
                   _optional(data.get("failing_rps")),
                   None if data.get("stop_reason") is None else str(data["stop_reason"]))

    def to_dict(self) -> dict:
        return asdict(self)


def _optional(value: float | None) -> float | None:
    return None if value is None else float(value)
