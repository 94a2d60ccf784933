"""`paretoserve estimate`: a roofline model of decoding (bytes vs FLOPs per component) that predicts where
throughput plateaus and why; `--calibrate DIR` fits its efficiency factors to a measured sweep."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from rich.console import Console

from paretoserve.cli import examples
from paretoserve.cli.common import UsageError, add_cache_dir_arg, add_model_arg
from paretoserve.estimate.calibrate import CalibrationError, calibrate
from paretoserve.estimate.console import (
    estimate_dict,
    hardware_dict,
    render_calibration,
    render_estimate,
    render_hardware_list,
)
from paretoserve.estimate.cpu_probe import CpuProbeConfig
from paretoserve.estimate.explain import explain
from paretoserve.estimate.hardware import hardware_names, load_hardware
from paretoserve.estimate.roofline import ENGINES, Workload, default_efficiency, max_batch_fitting, predict
from paretoserve.geometry import GeometryError, dtype_bytes, load_geometry
from paretoserve.limits import IntRange, parse_int_list

DEFAULT_BATCHES = "1,2,4,8,16,32,64,128,256,512,1024"
DEFAULT_TOKENS = 128
BATCHES = IntRange(1, 1 << 20)  # --max-batch of a prediction: any batch size, not only what an engine allows


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("estimate", help=help, description=help,
                              epilog=examples("paretoserve estimate --hardware h100 --max-batch 1,8,64"))
    add_model_arg(p, files="GGUF file, a Hugging Face config.json")
    add_cache_dir_arg(p, holds="the bundled model and the CPU bandwidth are cached")
    p.add_argument("--hardware", default="cpu",
                   help=f"one of {', '.join(hardware_names())}, a YAML spec file, or 'list' (default: cpu)")
    p.add_argument("--max-batch", default=DEFAULT_BATCHES, help=f"batch sizes to predict (default: {DEFAULT_BATCHES})")
    p.add_argument("--input-tokens", type=int, default=None,
                   help=f"prompt tokens per request (default: {DEFAULT_TOKENS}, or the calibration sweep's)")
    p.add_argument("--output-tokens", type=int, default=None,
                   help=f"output tokens per request (default: {DEFAULT_TOKENS}, or the calibration sweep's)")
    p.add_argument("--dtype", default=None,
                   help="store every weight as this dtype instead of the model's own (fp16, bf16, fp8, int8, int4...)")
    p.add_argument("--kv-dtype", default="f16", help="KV cache dtype (default: f16)")
    p.add_argument("--engine", choices=sorted(ENGINES), default=None,
                   help="memory layout to assume (default: llama.cpp for GGUF files, vllm for config.json)")
    p.add_argument("--memory-fraction", type=float, default=None,
                   help="share of device memory the engine may use (default: 0.9)")
    p.add_argument("--calibrate", metavar="DIR", default=None,
                   help="fit the efficiency factors to this sweep directory and report the error per point")
    p.add_argument("--correct-cpu-share", action="store_true",
                   help="calibrate on throughput / the share of its threads' cores each engine got (engine_cpu_cores "
                        "/ threads): for CPU sweeps on a machine shared with other work")
    p.add_argument("--remeasure", action="store_true", help="measure this CPU's bandwidth again (hardware cpu)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON result to this file")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of tables")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    probe = CpuProbeConfig(cache_dir=args.cache_dir, remeasure=args.remeasure)
    if args.hardware == "list":
        return _list_hardware(args, probe)
    batches = parse_batches(args.max_batch)
    for flag, value in (("--input-tokens", args.input_tokens), ("--output-tokens", args.output_tokens)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1; got {value}")
    if args.memory_fraction is not None and not 0 < args.memory_fraction <= 1:
        raise UsageError(f"--memory-fraction must be in (0, 1]; got {args.memory_fraction}")
    geometry = load_geometry(args.model, args.cache_dir)
    try:
        geometry = geometry.with_dtype(args.dtype) if args.dtype else geometry
    except GeometryError as exc:
        raise UsageError(f"--dtype: {exc}") from exc
    try:
        kv_bytes = dtype_bytes(args.kv_dtype)
    except GeometryError as exc:
        raise UsageError(f"--kv-dtype: {exc}") from exc
    engine = ENGINES[args.engine or ("vllm" if args.model.endswith(".json") else "llama.cpp")]
    engine = replace(engine, kv_dtype_bytes=kv_bytes, memory_fraction=args.memory_fraction or engine.memory_fraction)
    hardware = load_hardware(args.hardware, probe)
    try:
        calibrated = (calibrate(args.calibrate, geometry, hardware, engine, args.correct_cpu_share)
                      if args.calibrate else None)
    except CalibrationError as exc:
        raise UsageError(f"--calibrate {exc}") from exc
    workload = _workload(args, calibrated)
    efficiency = calibrated.efficiency if calibrated else default_efficiency(hardware)
    curve = [predict(geometry, hardware, b, workload, engine, efficiency) for b in batches]
    fitting = max_batch_fitting(geometry, hardware, workload, engine)
    data = estimate_dict(geometry, hardware, engine, workload, efficiency, curve, fitting,
                         explain(curve, hardware, fitting), calibrated)
    def render(console: Console) -> None:
        if calibrated:
            render_calibration(console, data["calibration"])
        render_estimate(console, data)

    _emit(args, data, render)
    return 0


def parse_batches(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], sorted; the error names --max-batch."""
    return sorted(parse_int_list("--max-batch", text, BATCHES, UsageError))


def _workload(args: argparse.Namespace, calibrated) -> Workload:
    """The flags' request shape; unset ones follow the calibration sweep's typical request, else 128 tokens."""
    if calibrated:
        shapes = [f.point.workload for f in calibrated.points]
        default_in = round(statistics.median(s.input_tokens for s in shapes))
        default_out = round(statistics.median(s.output_tokens for s in shapes))
    else:
        default_in = default_out = DEFAULT_TOKENS
    return Workload(input_tokens=args.input_tokens or default_in, output_tokens=args.output_tokens or default_out)


def _list_hardware(args: argparse.Namespace, probe: CpuProbeConfig) -> int:
    specs = [load_hardware(name, probe) for name in hardware_names()]
    _emit(args, {"hardware": [hardware_dict(h) for h in specs]},
          lambda console: render_hardware_list(console, specs))
    return 0


def _emit(args: argparse.Namespace, data: dict, render: Callable[[Console], None]) -> None:
    if args.out:
        try:
            args.out.write_text(json.dumps(data, indent=2))
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot write it ({exc.strerror or exc})") from exc
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        render(Console(file=sys.stdout))
