"""What a placement.json says of its measurement, typed: each model's rate in each arrangement (`colocation`, as
sweep/colocation.py's `ColocationResult.to_dict()` writes it) and the mix's capacity under every model's SLO
(`mix_capacity`, from sweep/mix_capacity.py). Read here because advise's console and the report, which show
them, sit below sweep."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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

    @classmethod
    def from_dict(cls, data: dict) -> ModelRates:
        return cls(str(data["name"]), float(data["share"]), str(data["metric"]), float(data["placement_rps"]),
                   float(data["time_sharing_rps"]), float(data["solo_rps"]), _optional(data.get("interference")))


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
        return {"mix_throughput_rps": {"placement": self.placement_rps, "time_sharing": self.time_sharing_rps,
                                       "solo": self.solo_rps, "solo_per_device": self.solo_per_device_rps},
                "devices": self.devices, "placement_over_time_sharing": self.ratio(self.time_sharing_rps),
                "placement_over_solo_per_device": self.ratio(self.solo_per_device_rps),
                "models": [asdict(m) for m in self.models], "runs": self.runs, "wall_s": self.wall_s,
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class MixModelRun:
    """One model at one total rate of the mix: its own rate (requests/s), the share of its requests within its SLO."""

    name: str
    rate_rps: float
    attainment: float  # 0..1
    met: bool
    slo: str | None

    @classmethod
    def from_dict(cls, data: dict) -> MixModelRun:
        return cls(str(data["name"]), float(data["rate_rps"]), float(data["attainment"]), bool(data["met"]),
                   None if data.get("slo") is None else str(data["slo"]))


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
