"""Showing an estimate: JSON-ready dicts and rich tables of the predicted curve, a calibration and the hardware list."""

from __future__ import annotations

from dataclasses import asdict

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paretoserve.estimate.calibrate import CalibratedModel
from paretoserve.estimate.hardware import HardwareSpec
from paretoserve.estimate.roofline import Efficiency, EngineAssumptions, StepPrediction, Workload
from paretoserve.geometry import ModelGeometry

SHORT_LABELS = {"qkv_out": "QKV/out", "mlp": "MLP", "attention": "attn", "lm_head": "LM head",
                "embeddings": "embed"}


def geometry_dict(g: ModelGeometry, engine: EngineAssumptions) -> dict:
    return {"name": g.name, "architecture": g.architecture, "layers": g.layers, "hidden": g.hidden, "heads": g.heads,
            "kv_heads": g.kv_heads, "head_dim": g.head_dim, "ffn": g.ffn, "vocab": g.vocab,
            "tied_embeddings": g.tied_embeddings, "sliding_window": g.sliding_window, "local_layers": g.local_layers,
            "weight_bytes": g.weight_bytes, "bytes_per_param": g.bytes_per_param,
            "kv_bytes_per_token": g.kv_bytes_per_token(engine.kv_dtype_bytes), "source": g.source}


def hardware_dict(h: HardwareSpec) -> dict:
    return {"name": h.name, "description": h.description, "memory_bytes": h.memory_bytes,
            "bandwidth_bytes_per_s": h.bandwidth_bytes_per_s, "peak_flops": h.peak_flops,
            "ridge_flops_per_byte": h.ridge_flops_per_byte, "bandwidth_measured": h.bandwidth_measured,
            "source": h.source}


def prediction_dict(p: StepPrediction) -> dict:
    """One batch size's prediction; times in ms, throughput in output tok/s, bytes, FLOPs, FLOP/byte."""
    return {"label": p.label, "batch": p.batch, "context_tokens": p.context_tokens, "step_ms": p.step_s * 1e3,
            "itl_ms": p.itl_s * 1e3, "output_throughput": p.output_throughput,
            "prefill_ms_per_request": p.prefill_s_per_request * 1e3, "bound_by": p.bound_by,
            "compute_utilisation": p.compute_utilisation, "bandwidth_utilisation": p.bandwidth_utilisation,
            "kv_bytes": p.kv_bytes, "fits_memory": p.fits_memory,
            "components": {c.name: {"bytes": c.bytes, "flops": c.flops, "time_ms": c.time_s * 1e3, "bound": c.bound,
                                    "arithmetic_intensity": c.intensity, "step_share": c.time_s / p.step_s}
                           for c in p.components}}


def calibration_dict(model: CalibratedModel) -> dict:
    return {"sweep_dir": model.sweep_dir, "efficiency": asdict(model.efficiency),
            "cpu_share_corrected": model.cpu_share_corrected,
            "median_abs_fit_error": model.median_abs_fit_error,
            "median_abs_leave_out_error": model.median_abs_leave_out_error,
            "points": [{"key": f.point.key, "max_batch": f.point.max_batch, "batch": f.point.batch,
                        "input_tokens": f.point.workload.input_tokens,
                        "output_tokens": f.point.workload.output_tokens,
                        "measured_output_throughput": f.point.measured_output_throughput,
                        "cpu_share": f.point.cpu_share, "target_output_throughput": f.point.output_throughput,
                        "fitted_output_throughput": f.fitted_throughput,
                        "leave_out_output_throughput": f.leave_out_throughput,
                        "leave_out_error": f.leave_out_error} for f in model.points]}


def estimate_dict(geometry: ModelGeometry, hardware: HardwareSpec, engine: EngineAssumptions, workload: Workload,
                  efficiency: Efficiency, curve: list[StepPrediction], max_batch: int, explanation: list[str],
                  calibration: CalibratedModel | None) -> dict:
    """Everything `estimate --json` prints; every throughput and latency in it is predicted, none measured."""
    return {"label": "predicted", "model": geometry_dict(geometry, engine), "hardware": hardware_dict(hardware),
            "engine": asdict(engine), "workload": asdict(workload), "efficiency": asdict(efficiency),
            "max_batch_fitting": max_batch, "points": [prediction_dict(p) for p in curve],
            "explanation": explanation, "calibration": calibration_dict(calibration) if calibration else None}


def render_estimate(console: Console, data: dict) -> None:
    """The predicted curve as a table, then the explanation."""
    model, hw, eff = data["model"], data["hardware"], data["efficiency"]
    console.print(f"[bold]{escape(model['name'])}[/] on [bold]{escape(hw['description'])}[/] "
                  f"({hw['bandwidth_bytes_per_s'] / 1e9:,.0f} GB/s, {hw['peak_flops'] / 1e12:,.2f} TFLOP/s, "
                  f"{hw['memory_bytes'] / 1e9:,.0f} GB); engine {data['engine']['name']}; "
                  f"{data['workload']['input_tokens']} in / {data['workload']['output_tokens']} out tokens")
    console.print(f"weights {model['weight_bytes'] / 1e6:,.0f} MB, KV {model['kv_bytes_per_token']:,} bytes/token; "
                  f"efficiency: weights bw {eff['weights_bandwidth']:.2f}, KV bw {eff['kv_bandwidth']:.2f}, "
                  f"compute {eff['compute']:.2f}, {eff['step_overhead_s'] * 1e3:.2f} ms/step ({escape(eff['source'])})")
    table = Table(title="decode roofline (predicted)", box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False,
                  pad_edge=False, collapse_padding=True)
    for column in ("B", "ITL ms", "tok/s", "bound by", "attn %", "AI mlp", "AI attn", "FLOP %", "KV GB", "fits"):
        table.add_column(column, justify="left" if column == "bound by" else "right", no_wrap=True)
    for p in data["points"]:
        comps = p["components"]
        bound = comps[p["bound_by"]]["bound"]
        table.add_row(str(p["batch"]), f"{p['step_ms']:.2f}", f"{p['output_throughput']:,.0f}",
                      f"{SHORT_LABELS[p['bound_by']]}/{'bw' if bound == 'bandwidth' else 'FLOP'}",
                      f"{comps['attention']['step_share']:.0%}", f"{comps['mlp']['arithmetic_intensity']:.1f}",
                      f"{comps['attention']['arithmetic_intensity']:.1f}", f"{p['compute_utilisation']:.0%}",
                      f"{p['kv_bytes'] / 1e9:.2f}", "yes" if p["fits_memory"] else "no")
    console.print(table)
    console.print("AI = arithmetic intensity (FLOP/byte); /bw = bandwidth-bound, /FLOP = compute-bound; "
                  "FLOP % = share of peak compute used")
    for line in data["explanation"]:
        console.print(f"- {escape(line)}")


def render_calibration(console: Console, calibration: dict) -> None:
    """Measured against fitted and leave-out predictions, per point, with the median errors."""
    table = Table(title=f"calibration on {escape(calibration['sweep_dir'])}", box=box.SIMPLE_HEAD, show_edge=False)
    corrected = calibration["cpu_share_corrected"]
    columns = ("cap", "B run", "measured", *(("CPU share", "target") if corrected else ()), "fitted",
               "left out", "error")
    for column in columns:
        table.add_column(column, justify="right")
    for p in calibration["points"]:
        share = f"{p['cpu_share']:.0%}" if p["cpu_share"] is not None else "-"
        extra = (share, f"{p['target_output_throughput']:,.1f}") if corrected else ()
        table.add_row(str(p["max_batch"]), f"{p['batch']:.1f}", f"{p['measured_output_throughput']:,.1f}", *extra,
                      f"{p['fitted_output_throughput']:,.1f}", f"{p['leave_out_output_throughput']:,.1f}",
                      f"{p['leave_out_error']:+.1%}")
    console.print(table)
    console.print("tok/s; fitted: a fit on every point; left out: a fit without this batch size; error: left out "
                  "vs " + ("target" if corrected else "measured"))
    if corrected:
        console.print("target = measured / CPU share (the engine's busy cores over its threads' cores): the "
                      "throughput with its cores to itself; errors are against the target")
    console.print(f"median |error|: {calibration['median_abs_fit_error']:.1%} fitted on all points, "
                  f"{calibration['median_abs_leave_out_error']:.1%} on batch sizes left out of the fit")


def render_hardware_list(console: Console, specs: list[HardwareSpec]) -> None:
    """Each spec's figures in a table, then where each figure comes from."""
    table = Table(title="hardware: --hardware NAME, or a YAML file with memory_gb, bandwidth_gb_s, peak_tflops",
                  box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("name", "device", "memory GB", "bandwidth GB/s", "peak TFLOP/s"):
        table.add_column(column, justify="right" if "GB" in column or "TFLOP" in column else "left")
    for h in specs:
        table.add_row(h.name, escape(h.description), f"{h.memory_bytes / 1e9:,.0f}",
                      f"{h.bandwidth_bytes_per_s / 1e9:,.1f}", f"{h.peak_flops / 1e12:,.3g}")
    console.print(table)
    console.print("sources:")
    for h in specs:
        console.print(f"- {h.name}: {escape(h.source)}")
