"""A sweep directory as the advisor sees it: its finished points (paretoserve.results.Point) and what the sweep
knows about its machine and model.

Works on sweeps of the embedded engine and on `paretoserve import vllm` directories alike.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, PrivateAttr

from paretoserve.limits import UserError
from paretoserve.results.point import Point
from paretoserve.results.store import StoreError
from paretoserve.results.sweep import (
    Sweep,
    device,
    engine_of,
    exported_from,
    imported_from,
    kv_bytes_per_token,
    model_file,
    on_gpu,
    read_sweep,
    usable_cores,
)


class AdviseError(UserError):
    """Bad input to advise: the message names the flag or the file and what is allowed."""


class SweepTable(BaseModel):
    """Every finished point of a sweep plus what the sweep knows about its machine and model."""

    directory: str
    points: list[Point]
    imported_from: str | None = None  # "vllm" for imported sweeps, None for paretoserve's own
    engine: str = "embedded"  # the preset the sweep ran (results.sweep.engine_of)
    model: str | None = None
    kv_bytes_per_token: int | None = None
    weights_bytes: int | None = None  # GGUF file size for the embedded engine
    ctx_per_seq: int | None = None
    device_memory_bytes: int | None = None  # from the environment: the GPU's memory, else the machine's RAM
    device_name: str | None = None
    cores: int | None = None
    on_gpu: bool = False  # replicas share the accelerator, not the CPU cores
    cpu_features: list[str] | None = None  # the measured machine's llama.cpp-relevant CPU flags; None = not recorded
    _sweep: Sweep | None = PrivateAttr(default=None)  # the sweep it was made of, so that nothing reads it again

    def sweep(self) -> Sweep | str:
        """The sweep as read (`sweep_table`), else its directory."""
        return self._sweep or self.directory

    def singles(self) -> list[Point]:
        """The single-replica points, smallest batch first: the BCA's input."""
        return sorted((p for p in self.points if p.replicas == 1), key=lambda p: (p.batch, p.max_batch))


def load_table(directory: str | Path) -> SweepTable:
    """Read a sweep directory (sweep.json + points.jsonl); raises AdviseError naming what is missing."""
    try:
        return sweep_table(read_sweep(directory))
    except StoreError as exc:
        raise AdviseError(str(exc)) from exc


def sweep_table(sweep: Sweep) -> SweepTable:
    """The advisor's view of a sweep already read."""
    spec, environment = sweep.spec, sweep.environment
    gguf = model_file(spec)
    per_token = kv_bytes_per_token(spec, gguf or exported_from(spec))  # the weights' size only from what ran
    device_bytes, device_name = device(environment)
    models = spec.get("model")
    table = SweepTable(
        directory=str(sweep.directory), points=sweep.points(per_token), imported_from=imported_from(spec),
        engine=engine_of(spec),
        model=", ".join(models) if isinstance(models, list) else models, kv_bytes_per_token=per_token,
        weights_bytes=gguf.stat().st_size if gguf else None, ctx_per_seq=spec.get("ctx_per_seq"),
        device_memory_bytes=device_bytes, device_name=device_name, cores=usable_cores(environment),
        on_gpu=on_gpu(spec, environment), cpu_features=environment.get("cpu_features"))
    table._sweep = sweep
    return table
