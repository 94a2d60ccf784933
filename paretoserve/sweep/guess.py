"""`sweep --search bca --hardware`: the roofline's guess at B_opt, measured right after the start point, so the
search skips the doublings the roofline predicts will stay within the SLO and still gain throughput.

The guess only chooses which cap to measure next; B_opt is always a measured point.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Callable

from paretoserve.advise.bca import STEP_LATENCIES
from paretoserve.bench.slo import RunLimit
from paretoserve.estimate.calibrate import CalibrationError
from paretoserve.estimate.cpu_probe import CpuProbeConfig
from paretoserve.estimate.hardware import load_hardware
from paretoserve.estimate.plans import RooflineConfig, calibrate_sweep, sweep_engine, sweep_geometry
from paretoserve.estimate.roofline import StepPrediction, Workload, default_efficiency, predict
from paretoserve.geometry import GeometryError
from paretoserve.results.point import Point
from paretoserve.sweep.search import Guess, nearest_cap

# (batch, request shape) -> the roofline's decode step at that batch.
Predict = Callable[[int, Workload], StepPrediction]


def point_workload(point: Point) -> Workload:
    """The mean request shape of a measured point (128 / 128 tokens where it recorded no token counts)."""
    out = point.output_tokens_per_request
    if not out or not point.tokens_per_request:
        return Workload()
    return Workload(input_tokens=max(round(point.tokens_per_request - out), 1), output_tokens=max(round(out), 1))


def roofline_guess(predict: Predict, candidates: tuple[int, ...], min_gain: float) -> Guess:
    """The last cap the search's doubling would pass through by the roofline: each doubling up to it stays
    within the step-latency limits and still gains `min_gain`. Measuring it and then its own doubling settles
    B_opt as the unguided search would, when the prediction holds. Step latencies are predicted relative to
    the first point, so the roofline's absolute error cancels out."""

    def guess(first: Point, limits: list[RunLimit]) -> int | None:
        workload = point_workload(first)
        step = functools.cache(lambda cap: predict(cap, workload))
        ref = step(first.max_batch).step_s
        step_limits = [lim for lim in limits if lim.field.endswith(STEP_LATENCIES)]  # each in first.latency_ms

        def meets(cap: int) -> bool:
            p = step(cap)
            return p.fits_memory and all(lim.holds(first.latency_ms[lim.field] * p.step_s / ref) for lim in step_limits)

        cap = first.max_batch
        while (upper := nearest_cap(candidates, 2 * cap, above=cap)) is not None and meets(upper):
            if step(upper).output_throughput / step(cap).output_throughput - 1 < min_gain:
                break  # the doubling from `cap` reaches the predicted plateau
            cap = upper
        return cap

    return guess


def sweep_guess(spec: dict, candidates: tuple[int, ...], min_gain: float, roofline: RooflineConfig,
                calibrate_dir: str | None = None) -> Guess:
    """The guess for a sweep of `spec` (SweepSpec.as_dict()): the roofline of `roofline.hardware`, with the
    efficiencies fitted to the earlier sweep `calibrate_dir` (same hardware and engine), else the uncalibrated
    ones. Raises ValueError (GeometryError, HardwareError, CalibrationError) naming the flag."""
    hardware = load_hardware(roofline.hardware, CpuProbeConfig(cache_dir=roofline.cache_dir))
    geometry, engine = sweep_geometry(spec, roofline), sweep_engine(spec)
    efficiency = default_efficiency(hardware)
    if calibrate_dir:
        try:
            efficiency = calibrate_sweep(calibrate_dir, replace(roofline, model_geometry=None), hardware).efficiency
        except (CalibrationError, GeometryError) as exc:
            raise CalibrationError(f"--calibrate {calibrate_dir}: cannot fit the roofline to it: {exc}") from exc
    return roofline_guess(lambda batch, workload: predict(geometry, hardware, batch, workload, engine, efficiency),
                          candidates, min_gain)
