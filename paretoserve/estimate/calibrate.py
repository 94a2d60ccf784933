"""Fit the roofline's efficiency factors to a measured sweep, and say how well it predicts batch sizes left out.

The factors (bandwidth efficiency for weights and for the KV cache, compute efficiency, a fixed cost per
step) are found by a grid search in log space (the per-component max() makes the model non-smooth);
the fixed cost is solved in closed form for each grid point.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from paretoserve.estimate.hardware import HardwareSpec
from paretoserve.estimate.roofline import (
    COMPONENTS,
    Efficiency,
    EngineAssumptions,
    StepPrediction,
    Workload,
    component_traffic,
    default_efficiency,
    predict,
    prefill_flops_per_request,
)
from paretoserve.geometry import ModelGeometry
from paretoserve.limits import UserError
from paretoserve.results.point import Point
from paretoserve.results.store import POINTS_FILE, NoFinishedPoint, StoreError, SweepStore
from paretoserve.results.sweep import Sweep, read_sweep, usable_cores

SPEC_BANDWIDTH_LIMITS = (0.01, 1.0)  # a spec-sheet bandwidth is a ceiling no kernel beats
MEASURED_BANDWIDTH_LIMITS = (0.01, 2.0)  # a bandwidth measured on a busy machine can come out low
COMPUTE_GRID = (0.005, 4.0)  # above 1 when int8 dot products beat the fp32 peak (llama.cpp on a CPU)
GRID_POINTS = 20
REFINE_ROUNDS = 3
PRIOR_WEIGHT = 1e-3  # a factor 2.7 away from the default costs as much as a 3 % error on one point
MIN_BATCH_SIZES = 3  # the fewest batch sizes a fit is made on (each is also left out once to test it)


class CalibrationError(UserError):
    """The sweep cannot be used for a fit; the message starts with the directory and says why (the caller
    names its flag)."""


@dataclass(frozen=True)
class MeasuredPoint:
    """One measured sweep point as the fit sees it: the batch that really ran and the request shape."""

    key: str
    max_batch: int
    batch: float  # the point's mean_batch: mean running sequences while busy (the cap where not sampled)
    workload: Workload
    output_throughput: float  # the fit's target, output tok/s: as measured, or divided by cpu_share if corrected
    measured_output_throughput: float  # output tok/s as measured
    cpu_share: float | None = None  # busy cores of the engine / cores its threads could use (CPU sweeps), <= 1


@dataclass(frozen=True)
class PointFit:
    """A measured point against the fitted prediction and against the prediction of a fit without it."""

    point: MeasuredPoint
    fitted_throughput: float
    leave_out_throughput: float

    @property
    def fit_error(self) -> float:
        return self.fitted_throughput / self.point.output_throughput - 1

    @property
    def leave_out_error(self) -> float:
        """Relative error of the throughput predicted by a fit that never saw this batch size."""
        return self.leave_out_throughput / self.point.output_throughput - 1


@dataclass(frozen=True)
class CalibratedModel:
    """A roofline with fitted efficiencies; `predict` gives labelled-`predicted` figures for untested batches."""

    geometry: ModelGeometry
    hardware: HardwareSpec
    engine: EngineAssumptions
    efficiency: Efficiency
    points: list[PointFit]
    sweep_dir: str
    cpu_share_corrected: bool = False

    def predict(self, batch: float, workload: Workload) -> StepPrediction:
        """Predicted decode step and throughput at `batch` for `workload`, with the fitted efficiencies."""
        return predict(self.geometry, self.hardware, batch, workload, self.engine, self.efficiency)

    @property
    def median_abs_fit_error(self) -> float:
        return statistics.median(abs(p.fit_error) for p in self.points)

    @property
    def median_abs_leave_out_error(self) -> float:
        """Median |relative throughput error| over points each predicted by a fit that left its batch size out."""
        return statistics.median(abs(p.leave_out_error) for p in self.points)


def read_calibration_sweep(sweep_dir: str | Path) -> Sweep:
    """The sweep in `sweep_dir` (results.read_sweep); CalibrationError starting with the directory when there is
    none or it has no finished point."""
    store = SweepStore(sweep_dir)
    if not store.points_path.exists():
        raise CalibrationError(f"{sweep_dir}: no {POINTS_FILE} there (a sweep directory from "
                               "`paretoserve sweep` or `paretoserve import vllm`)")
    try:
        return read_sweep(store)
    except NoFinishedPoint as exc:
        raise _too_few(sweep_dir, 0) from exc
    except StoreError as exc:
        raise CalibrationError(f"{sweep_dir}: cannot read its points ({str(exc).removeprefix('DIR: ')})") from exc


def load_points(sweep: str | Path | Sweep, correct_cpu_share: bool = False) -> list[MeasuredPoint]:
    """The finished single-replica points of a sweep (read already, or its directory) with the fields a fit needs,
    smallest batch first.

    With `correct_cpu_share`, a point whose engine got only part of its threads' cores (a CPU shared with
    other work) is fitted at measured throughput / that share: what the engine does with its cores to itself.
    """
    where = _name(sweep)
    sweep = sweep if isinstance(sweep, Sweep) else read_calibration_sweep(sweep)
    cores = usable_cores(sweep.environment)
    points = []
    for p in sweep.points():
        if not p.completed or not p.output_throughput or p.replicas != 1:
            continue  # replicas share the device: not one engine's decode step
        shape = Workload(input_tokens=max(round(p.input_tokens_per_request or 0), 1),
                         output_tokens=max(round(p.output_tokens_per_request or 0), 1))
        share = _cpu_share(p, cores)
        target = p.output_throughput / share if correct_cpu_share and share else p.output_throughput
        points.append(MeasuredPoint(key=p.key, max_batch=p.max_batch, batch=p.mean_batch, workload=shape,
                                    output_throughput=target, measured_output_throughput=p.output_throughput,
                                    cpu_share=share))
    if len({p.max_batch for p in points}) < MIN_BATCH_SIZES:
        raise _too_few(where, len(points))
    return sorted(points, key=lambda p: (p.max_batch, p.key))


def _too_few(where: str | Path, found: int) -> CalibrationError:
    return CalibrationError(f"{where}: needs finished single-replica points at {MIN_BATCH_SIZES} or more batch "
                            f"sizes; found {found} point(s)")


def _name(sweep: str | Path | Sweep) -> str | Path:
    """The sweep's directory as given (or as read), for messages and the calibration's source."""
    return sweep.directory if isinstance(sweep, Sweep) else sweep


def _cpu_share(point: Point, machine_cores: int | None) -> float | None:
    """Engine busy cores over the cores its threads could use (threads 0 = all usable), at most 1."""
    busy, cores = point.engine_cpu_cores, point.threads or machine_cores
    if busy is None or busy <= 0 or not cores:
        return None
    return min(busy / cores, 1.0)


def calibrate(sweep: str | Path | Sweep, geometry: ModelGeometry, hardware: HardwareSpec, engine: EngineAssumptions,
              correct_cpu_share: bool = False, points: list[MeasuredPoint] | None = None) -> CalibratedModel:
    """Fit the efficiencies to every point of `sweep` (read already, or its directory; `points`, when the caller
    already loaded them), and refit without each batch size to test it."""
    sweep_dir = _name(sweep)
    points = points if points is not None else load_points(sweep, correct_cpu_share)
    terms = _Terms(points, geometry, hardware, engine)
    efficiency = terms.fit(np.ones(len(points), dtype=bool))
    fitted = terms.throughput(efficiency)
    left_out = {cap: terms.throughput(terms.fit(np.array([p.max_batch != cap for p in points])))
                for cap in {p.max_batch for p in points}}  # one refit per batch size left out
    fits = [PointFit(point=point, fitted_throughput=fitted[i], leave_out_throughput=left_out[point.max_batch][i])
            for i, point in enumerate(points)]
    corrected = ", throughput per CPU share" if correct_cpu_share else ""
    efficiency = replace(efficiency, source=f"calibrated on {sweep_dir} ({len(points)} points{corrected})")
    return CalibratedModel(geometry=geometry, hardware=hardware, engine=engine, efficiency=efficiency, points=fits,
                           sweep_dir=str(sweep_dir), cpu_share_corrected=correct_cpu_share)


class _Terms:
    """Per-point bytes and FLOPs of each component, so a grid of efficiencies evaluates as arrays."""

    def __init__(self, points: list[MeasuredPoint], geometry: ModelGeometry, hardware: HardwareSpec,
                 engine: EngineAssumptions) -> None:
        self.hardware = hardware
        self.prior = default_efficiency(hardware)
        self.bandwidth_limits = MEASURED_BANDWIDTH_LIMITS if hardware.bandwidth_measured else SPEC_BANDWIDTH_LIMITS
        traffic = np.array([[component_traffic(geometry, c, p.batch, p.workload.mean_context, engine)
                             for c in COMPONENTS] for p in points])  # points x components x (bytes, FLOPs)
        self.bytes, self.flops = traffic[..., 0], traffic[..., 1]
        self.is_kv = np.array([c == "attention" for c in COMPONENTS])
        self.batch = np.array([p.batch for p in points])
        self.out = np.array([p.workload.output_tokens for p in points], dtype=float)
        self.steps = np.maximum(self.out - 1, 0)
        self.prefill_flops = np.array([prefill_flops_per_request(geometry, p.workload) for p in points])
        self.measured_tau = 1.0 / np.array([p.output_throughput for p in points])  # seconds per output token

    def tau(self, weights_bw, kv_bw, compute, overhead) -> np.ndarray:
        """Predicted seconds per output token for arrays of efficiencies (shape: candidates x points)."""
        share = np.where(self.is_kv, kv_bw[:, None, None], weights_bw[:, None, None])
        bw = self.hardware.bandwidth_bytes_per_s * share
        peak = self.hardware.peak_flops * compute[:, None, None]
        step = np.maximum(self.bytes[None] / bw, self.flops[None] / peak).sum(axis=2) + overhead[:, None]
        prefill = self.prefill_flops[None] / (self.hardware.peak_flops * compute[:, None])
        return (self.steps * step + self.batch * prefill) / (self.batch * self.out)

    def throughput(self, e: Efficiency) -> np.ndarray:
        args = (np.array([e.weights_bandwidth]), np.array([e.kv_bandwidth]), np.array([e.compute]),
                np.array([e.step_overhead_s]))
        return 1.0 / self.tau(*args)[0]

    def fit(self, keep: np.ndarray) -> Efficiency:
        """Least squares on the relative error of time per token over the kept points, plus a weak pull
        towards the uncalibrated factors so that directions the data cannot tell apart (a fixed cost per
        step against weight bandwidth when weights never turn compute-bound) stay near them."""
        limits = [np.log(self.bandwidth_limits), np.log(self.bandwidth_limits), np.log(COMPUTE_GRID)]
        prior = np.log([self.prior.weights_bandwidth, self.prior.kv_bandwidth, self.prior.compute])
        bounds: list = limits
        best = None
        for _ in range(REFINE_ROUNDS):
            axes = [np.linspace(lo, hi, GRID_POINTS) for lo, hi in bounds]
            log_grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
            w, k, c = np.exp(log_grid).T
            ratio = self.tau(w, k, c, np.zeros(len(w)))[:, keep] / self.measured_tau[keep]
            # The fixed cost enters tau linearly with slope steps / (batch * out): solved per candidate, kept >= 0.
            slope = (self.steps / (self.batch * self.out))[keep] / self.measured_tau[keep]
            overhead = np.maximum(((1.0 - ratio) * slope).sum(axis=1) / (slope * slope).sum(), 0.0)
            err = ((ratio + overhead[:, None] * slope - 1.0) ** 2).sum(axis=1)
            err = err + PRIOR_WEIGHT * ((log_grid - prior) ** 2).sum(axis=1)
            i = int(np.argmin(err))
            best = (w[i], k[i], c[i], overhead[i])
            widths = [(hi - lo) / (GRID_POINTS - 1) for lo, hi in bounds]
            bounds = [(max(np.log(v) - 2 * d, lo), min(np.log(v) + 2 * d, hi))
                      for v, d, (lo, hi) in zip(best[:3], widths, limits, strict=True)]
        assert best is not None  # REFINE_ROUNDS >= 1
        w, k, c, o = best
        return Efficiency(weights_bandwidth=float(w), kv_bandwidth=float(k), compute=float(c),
                          step_overhead_s=float(o))
