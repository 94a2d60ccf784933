"""A placement read back for `advise` and `report`: placement.json (`tune --model A --model B` writes it, in
tune/placement.py) with its memory map, its measurement against the alternatives, the mix's capacity when it has
one, and each model's advice.json and sweep directory.

- `placement_file(path)`: the placement.json a path names (the file, or the directory holding it), else None.
- `read_placement_view(path, flag)`: all of it, read once; PlacementFileError naming `flag` for a missing file,
  a file that is not a placement, or an advice.json that cannot be read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from paretoserve.advise.advice import Advice
from paretoserve.advise.advice_file import read_advice
from paretoserve.advise.memory_map import MemoryMap
from paretoserve.limits import UserError
from paretoserve.results.placement import ColocationFigures, MixCapacityFigures

PLACEMENT_FILE = "placement.json"


class PlacementFileError(UserError):
    """A placement.json that cannot be read or is not one `tune` wrote; the message names the argument."""


@dataclass(frozen=True)
class PlacedModel:
    """One model as placed (one engine setup on the device) and its own tune: its advice and its sweep directory."""

    name: str  # the name it is served under
    model: str  # `default`, `smollm2` or a GGUF path
    share: float  # of the mix's requests
    replicas: int
    max_batch: int  # each replica's batch cap, B_opt's
    kv_tokens: int | None  # each replica's KV cache, tokens
    threads_per_replica: int
    mem_fraction: float | None  # of the device, all its replicas together
    advice: Advice
    advice_path: Path
    sweep_dir: Path  # its tune's sweep directory: its throughput over the batch cap

    def to_dict(self) -> dict:
        plan = self.advice.replica_plan
        return {"name": self.name, "model": self.model, "share": self.share, "advice": str(self.advice_path),
                "sweep_dir": str(self.sweep_dir), "b_opt": self.advice.b_opt,
                "b_opt_max_batch": self.advice.b_opt_max_batch, "slo": self.advice.slo.text,
                "throughput_metric": self.advice.throughput_metric,
                "throughput_at_b_opt": self.advice.throughput_at_b_opt,
                "plan": {"replicas": plan.replicas, "max_batch": plan.max_batch,
                         "expected_throughput": plan.expected_throughput, "kind": plan.predicted_or_measured},
                "placed": {"replicas": self.replicas, "max_batch": self.max_batch, "kv_tokens": self.kv_tokens,
                           "threads_per_replica": self.threads_per_replica, "mem_fraction": self.mem_fraction}}


@dataclass(frozen=True)
class PlacementView:
    """Everything a placement.json holds or points to, in --model order."""

    path: Path  # placement.json
    cores: int  # the device's
    serve: str  # the `paretoserve serve` line that runs it
    models: tuple[PlacedModel, ...]
    memory: MemoryMap
    colocation: ColocationFigures
    mix_capacity: MixCapacityFigures | None  # absent until the mix's capacity was measured

    def to_dict(self) -> dict:
        """What `advise --json` prints for a placement."""
        return {"placement": str(self.path), "cores": self.cores, "serve": self.serve,
                "models": [m.to_dict() for m in self.models], "memory": self.memory.to_dict(),
                "colocation": self.colocation.to_dict(),
                "mix_capacity": self.mix_capacity.to_dict() if self.mix_capacity else None}


def placement_file(path: str | Path) -> Path | None:
    """The placement.json `path` names: itself when it is a file of that name, the one inside it when it is a
    directory holding one; None otherwise (a sweep directory, say)."""
    path = Path(path)
    if path.is_dir():
        inside = path / PLACEMENT_FILE
        return inside if inside.is_file() else None
    return path if path.name == PLACEMENT_FILE else None


def read_placement_view(path: str | Path, flag: str = "DIR") -> PlacementView:
    """The placement at `path` (placement.json or its directory) and each model's advice.json and sweep directory;
    PlacementFileError naming `flag` where any of it cannot be read."""
    path = placement_file(path) or Path(path)
    if path.is_dir():
        raise PlacementFileError(f"{flag}: {path} holds no {PLACEMENT_FILE}; `tune --model A --model B --out "
                                 f"{path}` writes one")
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise PlacementFileError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PlacementFileError(f"{flag}: {path} is not valid JSON: {exc}") from exc
    foreign = f"{flag}: {path} is not a placement that `tune --model A --model B` writes"
    try:
        memory = MemoryMap.from_dict(data["memory"])
        colocation = ColocationFigures.from_dict(data["colocation"])
        capacity = data.get("mix_capacity")
        mix_capacity = MixCapacityFigures.from_dict(capacity) if capacity is not None else None
        entries = list(data["models"])
        cores, serve = int(data["cores"]), str(data["serve"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlacementFileError(f"{foreign} ({type(exc).__name__}: {exc})") from exc
    if not len(entries) == len(colocation.models) == len(memory.models):
        raise PlacementFileError(f"{foreign}: {len(entries)} models, {len(colocation.models)} measured, "
                                 f"{len(memory.models)} in its memory map")
    models = tuple(_placed(entry, rates.name, path, flag, foreign)
                   for entry, rates in zip(entries, colocation.models, strict=True))
    return PlacementView(path, cores, serve, models, memory, colocation, mix_capacity)


def _placed(entry: dict, name: str, path: Path, flag: str, foreign: str) -> PlacedModel:
    """One models[] entry with its advice (a relative path taken from placement.json's directory)."""
    try:
        advice_path = path.parent / entry["advice"]  # an absolute path stays as it is
        settings = (str(entry["model"]), float(entry["share"]), int(entry["replicas"]), int(entry["max_batch"]),
                    _int(entry.get("kv_tokens")), int(entry["threads_per_replica"]),
                    None if entry.get("mem_fraction") is None else float(entry["mem_fraction"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PlacementFileError(f"{foreign} (models[]: {type(exc).__name__}: {exc})") from exc
    advice = read_advice(advice_path, flag)
    return PlacedModel(name, *settings, advice=advice, advice_path=advice_path,
                       sweep_dir=_sweep_dir(advice, advice_path))


def _sweep_dir(advice: Advice, advice_path: Path) -> Path:
    """`sweep/` beside advice.json, as tune lays a model's directory out (so a moved placement reads its own), else
    the sweep directory the advice names."""
    beside = advice_path.parent / "sweep"
    return beside if beside.is_dir() else advice_path.parent / advice.sweep_dir


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)
