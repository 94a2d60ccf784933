"""A finished sweep directory read once: its spec, the machine it ran on and its points; and what kind of sweep
it is (the embedded engine's, an --engine-cmd one, a `paretoserve import vllm` directory).

`spec` is sweep.json's spec (SweepSpec.as_dict() for paretoserve's own sweeps, the import's settings for
imports), `environment` what sweep/environment.py recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.geometry import kv_bytes_per_token_gguf
from paretoserve.model import GGUF_ENGINES, PACKAGED_MODELS, ModelError, names_gguf, resolve_model
from paretoserve.results.point import Point, to_point, with_derived_energy
from paretoserve.results.store import SweepStore

VLLM_IMPORT = "vllm"  # spec["imported_from"] of `paretoserve import vllm` directories


@dataclass(frozen=True)
class Sweep:
    """What a sweep directory holds; `records` are its finished points as written, energy derived where the
    record has none of its own (results.point.record_energy)."""

    directory: Path
    spec: dict
    environment: dict
    records: tuple[dict, ...]
    failed: tuple[dict, ...] = field(default=())
    capacity: tuple[dict, ...] = field(default=())  # `paretoserve capacity` runs (results/rate_run.py), apart

    def points(self, kv_bytes_per_token: int | None = None) -> list[Point]:
        return [to_point(r, kv_bytes_per_token) for r in self.records]


def read_sweep(directory: str | Path | SweepStore) -> Sweep:
    """Read sweep.json and points.jsonl (a store open for writing gives what it holds, without reading the
    points again); StoreError naming DIR when the directory is missing, is not a sweep, or has no finished point."""
    store = directory if isinstance(directory, SweepStore) else SweepStore(directory)
    stored, ok, failed = store.read_finished()
    return Sweep(directory=store.dir, spec=stored.get("spec") or {}, environment=stored.get("environment") or {},
                 records=tuple(with_derived_energy(r) for r in ok), failed=tuple(failed),
                 capacity=tuple(store.capacity_runs()))


def imported_from(spec: dict) -> str | None:
    """'vllm' for a `paretoserve import vllm` directory, None for a sweep paretoserve ran."""
    return spec.get("imported_from")


def engine_of(spec: dict) -> str:
    """The --engine preset the sweep ran ('embedded' for sweeps recorded before presets existed); 'custom' for an
    --engine-cmd, 'vllm' for an import."""
    if imported_from(spec):
        return str(imported_from(spec))
    return "custom" if spec.get("engine_cmd") else str(spec.get("engine") or "embedded")


def runs_vllm(spec: dict) -> bool:
    """vLLM measured it: an import, the vllm preset, or an --engine-cmd that starts vLLM."""
    return engine_of(spec) == VLLM_IMPORT or "vllm" in str(spec.get("engine_cmd") or "")


def embedded_model(spec: dict) -> str | None:
    """The --model ('default' or a GGUF path) of a sweep of a GGUF engine (the embedded one, llama-server); None
    for other presets, --engine-cmd sweeps and imports."""
    model = spec.get("model")
    if engine_of(spec) not in GGUF_ENGINES or not model or not isinstance(model, str):
        return None
    return model


def model_file(spec: dict) -> Path | None:
    """The GGUF file an embedded-engine sweep ran, when it is still on this machine."""
    return _gguf(embedded_model(spec))


def exported_from(spec: dict) -> Path | None:
    """The GGUF a vLLM sweep ran the HF export of ('default' or a .gguf --model): the same geometry, other
    weights (bf16), when it is still on this machine."""
    model = spec.get("model")
    if engine_of(spec) != "vllm" or not isinstance(model, str) or not names_gguf(model):
        return None
    return _gguf(model)


def _gguf(model: str | None) -> Path | None:
    if model in PACKAGED_MODELS:
        try:
            return resolve_model(model).path  # the bundled model is built on first use
        except (ModelError, ImportError, OSError):
            return None
    return Path(model) if model and Path(model).is_file() else None


def geometry_source(spec: dict) -> str | None:
    """Where the model's geometry is: an import's --model-config, else the embedded engine's GGUF (or 'default')."""
    return spec.get("model_config") or embedded_model(spec)


def kv_bytes_per_token(spec: dict, gguf_file: Path | None) -> int | None:
    """KV bytes per token: as the import recorded it, else from the embedded engine's GGUF (`model_file(spec)`);
    None when unknown."""
    return spec.get("kv_bytes_per_token") or (kv_bytes_per_token_gguf(gguf_file) if gguf_file else None)


def on_gpu(spec: dict, environment: dict) -> bool:
    """Replicas share an accelerator (rather than the CPU cores)."""
    return bool(environment.get("gpus")) or imported_from(spec) == VLLM_IMPORT


def device(environment: dict) -> tuple[int | None, str | None]:
    """(memory bytes, name) of the device: the first GPU with a known memory size, else the machine's RAM and CPU."""
    gpus = [g for g in environment.get("gpus") or [] if isinstance(g.get("memory_total_bytes"), (int, float))]
    if gpus:
        return int(gpus[0]["memory_total_bytes"]), gpus[0].get("name")
    ram = environment.get("memory_total_bytes")
    return (int(ram), environment.get("cpu_model") or "CPU") if isinstance(ram, (int, float)) else (None, None)


def usable_cores(environment: dict) -> int | None:
    """The cores the sweep's engines could use (its affinity mask), else the machine's."""
    cores = environment.get("cpu_cores_usable") or environment.get("cpu_cores")
    return int(cores) if isinstance(cores, (int, float)) and cores > 0 else None
