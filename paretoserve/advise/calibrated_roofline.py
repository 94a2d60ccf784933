"""`advise --hardware`: the roofline calibrated on the sweep's single-engine points, to predict replica plans the
sweep did not measure (paretoserve/estimate/plans.py says how replicas share the device)."""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel

from paretoserve.advise.table import AdviseError, Point, SweepTable
from paretoserve.estimate.calibrate import CalibrationError
from paretoserve.estimate.plans import RooflineConfig, calibrate_sweep, predict_replicas

# (point, replicas) -> (throughput, time per decode step) of that many copies of a single-engine point,
# relative to the point itself; None for a point the roofline was not fitted to (no token counts).
ReplicaScale = Callable[[Point, int], tuple[float, float] | None]


class RooflineError(AdviseError):
    """The roofline cannot be set up or calibrated for this sweep (`--hardware`); the message says why."""


class RooflineSummary(BaseModel):
    """The calibrated roofline advise used; its figures are predicted, never measured."""

    hardware: str  # the roofline hardware's name (--hardware)
    efficiency: dict[str, float]  # fitted factors: weights_bandwidth, kv_bandwidth, compute, step_overhead_s
    points: int  # single-engine points it was fitted to
    median_abs_leave_out_error: float  # of throughput, each point predicted by a fit without its batch size
    device_sharing: str  # how the replicas share the device, in words

    def text(self) -> str:
        """One sentence for people: which roofline, how well it predicts, how replicas share the device."""
        return (f"roofline: {self.hardware}, fitted to {self.points} single-engine points (median leave-out "
                f"throughput error {self.median_abs_leave_out_error:.1%}); {self.device_sharing}")


def calibrated_roofline(table: SweepTable, hardware: str, model_geometry: str | None
                        ) -> tuple[RooflineSummary, ReplicaScale]:
    """Calibrate on `table`'s sweep; the scale predicts copies of its single-engine points."""
    try:
        model = calibrate_sweep(table.sweep(), RooflineConfig(hardware, model_geometry))
    except CalibrationError as exc:
        raise RooflineError(f"--hardware {hardware}: cannot calibrate the roofline on {exc}") from exc
    except ValueError as exc:  # unknown hardware or unreadable geometry: the message names the flag
        raise RooflineError(str(exc)) from exc
    fitted = {f.point.key: f.point for f in model.points}

    def scale(point: Point, replicas: int) -> tuple[float, float] | None:
        fit = fitted.get(point.key)
        if fit is None:
            return None
        one = predict_replicas(model, 1, fit.batch, fit.workload, table.on_gpu)
        many = predict_replicas(model, replicas, fit.batch, fit.workload, table.on_gpu)
        return many.output_throughput / one.output_throughput, many.step_s / one.step_s

    e = model.efficiency
    summary = RooflineSummary(
        hardware=model.hardware.name, points=len(model.points),
        efficiency={"weights_bandwidth": e.weights_bandwidth, "kv_bandwidth": e.kv_bandwidth,
                    "compute": e.compute, "step_overhead_s": e.step_overhead_s},
        median_abs_leave_out_error=model.median_abs_leave_out_error,
        device_sharing=("one accelerator: device work of the replicas serialises, host work overlaps it"
                        if table.on_gpu else "CPU cores split among pinned replicas that share the memory bus"))
    return summary, scale
