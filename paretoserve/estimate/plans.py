"""The roofline as the rest of paretoserve uses it: set up for a sweep directory, and predicting N replicas of one
batch on one device. Every figure here is `predicted`, never measured.

How replicas share a device is the model's one assumption beyond the roofline:
- one accelerator (vLLM or SGLang under MPS): device work of the replicas runs one after another, while one
  replica's host work (scheduling, sampling: the fitted fixed cost per step) overlaps another's device work;
- CPU cores split among pinned replicas: each replica keeps the cores its threads had alone and all share the
  memory bus, so each streams at 1/N of the bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from paretoserve.estimate.calibrate import CalibratedModel, calibrate, load_points, read_calibration_sweep
from paretoserve.estimate.cpu_probe import CpuProbeConfig
from paretoserve.estimate.hardware import HardwareSpec, load_hardware
from paretoserve.estimate.roofline import ENGINES, EngineAssumptions, Workload, predict
from paretoserve.geometry import GeometryError, ModelGeometry, load_geometry
from paretoserve.results.sweep import Sweep, geometry_source, runs_vllm


@dataclass(frozen=True)
class RooflineConfig:
    """Which roofline to use: the hardware (a `--hardware` name or YAML) and where the model's geometry is."""

    hardware: str
    model_geometry: str | None = None  # a .gguf or config.json; None = the model the sweep names
    cache_dir: str | None = None  # where the bundled model and this CPU's bandwidth are cached


@dataclass(frozen=True)
class ReplicaPrediction:
    """N replicas of one batch: total output tok/s and each replica's time per decode step (s)."""

    replicas: int
    batch: float
    output_throughput: float
    step_s: float
    label: str = "predicted"


def sweep_geometry(spec: dict, config: RooflineConfig) -> ModelGeometry:
    """The geometry of the model a sweep ran: --model-geometry, else its config.json (imported) or GGUF (own)."""
    source = config.model_geometry or geometry_source(spec)
    if source is None:
        raise GeometryError("--model-geometry: this sweep does not name a model file whose geometry can be read "
                            "(an --engine-cmd sweep or an import without --model-config); give the model's "
                            "config.json or .gguf")
    try:
        return load_geometry(str(source), config.cache_dir)
    except GeometryError as exc:
        raise GeometryError(str(exc).replace("--model", "--model-geometry", 1)) from exc


def sweep_engine(spec: dict) -> EngineAssumptions:
    """vLLM's memory layout for imported or vLLM-command sweeps, llama.cpp's otherwise."""
    if runs_vllm(spec):
        return ENGINES["vllm"]
    return ENGINES["llama.cpp"]


def calibrate_sweep(sweep: str | Path | Sweep, config: RooflineConfig, hardware: HardwareSpec | None = None
                    ) -> CalibratedModel:
    """The roofline of `config.hardware` (or `hardware`, already loaded) fitted to the single-engine points
    of `sweep` (read already, or its directory).

    Raises GeometryError, HardwareError or CalibrationError (ValueErrors naming the flag or directory).
    """
    read = sweep if isinstance(sweep, Sweep) else read_calibration_sweep(sweep)
    points = load_points(read)  # a sweep without usable points says so before its model is looked up
    hardware = hardware or load_hardware(config.hardware, CpuProbeConfig(cache_dir=config.cache_dir))
    return calibrate(sweep, sweep_geometry(read.spec, config), hardware, sweep_engine(read.spec), points=points)


def predict_replicas(model: CalibratedModel, replicas: int, batch: float, workload: Workload,
                     shared_device: bool) -> ReplicaPrediction:
    """Throughput of `replicas` engines each running `batch` sequences of `workload` (see the module docstring)."""
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1; got {replicas}")
    if shared_device:
        alone = model.predict(batch, workload)
        device_s = alone.step_s - model.efficiency.step_overhead_s
        step = max(replicas * device_s, alone.step_s)
        prefill_s = replicas * batch * alone.prefill_s_per_request  # prompts too run one after another
    else:
        hardware = replace(model.hardware, bandwidth_bytes_per_s=model.hardware.bandwidth_bytes_per_s / replicas)
        each = predict(model.geometry, hardware, batch, workload, model.engine, model.efficiency)
        step, prefill_s = each.step_s, batch * each.prefill_s_per_request
    decode_steps = max(workload.output_tokens - 1, 0)
    throughput = replicas * batch * workload.output_tokens / (decode_steps * step + prefill_s)
    return ReplicaPrediction(replicas=replicas, batch=batch, output_throughput=throughput, step_s=step)
