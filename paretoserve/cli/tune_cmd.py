"""`paretoserve tune`: the main job. An adaptive sweep of an engine's batch cap on the bundled model (or --model), the
BCA advice, one run of the replica plan next to the best single engine, and the HTML report."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from paretoserve.advise import AdviseConfig
from paretoserve.cli import examples
from paretoserve.cli.advice_args import add_advice_args, advise_config
from paretoserve.cli.common import UsageError, add_engine_choice, add_model_arg, add_repack_arg, stop_on_sigterm
from paretoserve.cli.sweep_search import add_remeasure_arg
from paretoserve.cli.traffic_args import add_capacity_step_args, capacity_step
from paretoserve.model import DEFAULT_MODEL
from paretoserve.results.store import is_finished
from paretoserve.tune import TuneConfig, run_tune
from paretoserve.tune.config import CapacityStep
from paretoserve.tune.placement import PlacementConfig, run_placement

DEFAULTS = TuneConfig()


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("tune", help=help, description=help,
                              epilog=examples("paretoserve tune --out tune-out"))
    add_model_arg(p, files="GGUF file (llama.cpp engines) or HF model directory (vllm, sglang)",
                  many="; repeat it to place several models on one device, each on cores of its own")
    p.add_argument("--mix", default=None, metavar="SHARES",
                   help="with several --model: each model's share of the requests, comma-separated, summing to 1 "
                        "(default: equal shares)")
    add_engine_choice(p, engine_cmd=False)
    p.add_argument("--out", type=Path, default=DEFAULTS.out, help="results directory (default: ./%(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the tune in --out, reusing finished points")
    g = p.add_argument_group("search")
    g.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch,
                   help="largest batch cap the search may run (default: %(default)s)")
    g.add_argument("--threads", type=int, default=DEFAULTS.threads,
                   help="threads of the single engine; 0 = every core (default: %(default)s)")
    add_repack_arg(g)
    g.add_argument("--min-gain", type=float, default=DEFAULTS.min_gain,
                   help="stop doubling the cap when it adds less than this share of throughput (default: %(default)s)")
    add_remeasure_arg(g, DEFAULTS.remeasure_budget)
    g.add_argument("--repeats", type=int, default=DEFAULTS.repeats,
                   help="runs of each point, each on a freshly started engine; figures are means with 95 %% "
                        "intervals (default: %(default)s)")
    g.add_argument("--wait-quiet", type=float, default=DEFAULTS.wait_quiet_s, metavar="SECONDS",
                   help="before each point's measured run, wait up to this long for other processes to go quiet "
                        "(default: 0, no wait)")
    g.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the run of the replica plan next to the best single engine")
    w = p.add_argument_group("workload of every point (fixed lengths, ignore_eos, closed loop at the cap)")
    w.add_argument("--input-tokens", type=int, default=DEFAULTS.input_tokens, help="default: %(default)s")
    w.add_argument("--output-tokens", type=int, default=DEFAULTS.output_tokens, help="default: %(default)s")
    w.add_argument("--duration", type=float, default=DEFAULTS.duration_s,
                   help="seconds of load per point, then in-flight requests finish (default: %(default)s)")
    add_advice_args(p, "SLO and advice (default: the paper's 3 x mean TPOT at B=32)", per_model=True)
    add_capacity_step_args(p.add_argument_group(
        "capacity: after the plan is chosen, the request rate it sustains and the replicas a traffic needs"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    models = tuple(args.model or [DEFAULT_MODEL])
    advices = advice_each(args, len(models))
    cfg = TuneConfig(model=models[0], engine=args.engine, out=args.out, max_batch=args.max_batch,
                     threads=args.threads, repack=args.repack, repeats=args.repeats, wait_quiet_s=args.wait_quiet,
                     input_tokens=args.input_tokens, output_tokens=args.output_tokens, duration_s=args.duration,
                     min_gain=args.min_gain, remeasure_budget=args.remeasure_budget, verify=args.verify,
                     resume=args.resume, capacity=capacity_step(args), advice=advices[0])
    if len(models) > 1:
        return run_several(args, cfg, models, advices)
    if args.mix is not None:
        raise UsageError("--mix needs several --model: it gives each model's share of the requests")
    if cfg.capacity is None and args.attainment != CapacityStep.attainment:
        raise UsageError("--attainment applies to the capacity step: give --capacity or --traffic")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        result = run_tune(cfg, say=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:  # main exits with 128 + the signal's number
        print(f"tune interrupted; finished points are in {cfg.out / 'sweep'}; continue with "
              f"`paretoserve tune --resume --out {cfg.out}` and the same flags", file=sys.stderr)
        raise
    print(summary(result))
    return 0


def advice_each(args: argparse.Namespace, models: int) -> tuple[AdviseConfig, ...]:
    """Each model's advice settings: the flags, with its own --slo (one for every model, or one per --model)."""
    slos = args.slo or [None]
    if len(slos) not in (1, models):
        raise UsageError(f"--slo: given {len(slos)} times for {models} model(s); give it once for every model or "
                         "once per --model, in order")
    return tuple(advise_config(args, slo=slo) for slo in (slos * models if len(slos) == 1 else slos))


def run_several(args: argparse.Namespace, cfg: TuneConfig, models: tuple[str, ...],
                advices: tuple[AdviseConfig, ...]) -> int:
    """Several models placed on one device (tune/placement.py)."""
    for flag, given in (("--threads", args.threads != DEFAULTS.threads), ("--no-verify", not args.verify),
                        ("--traffic and --capacity", cfg.capacity is not None)):
        if given:
            raise UsageError(f"{flag} applies to one --model; with several, each gets the device's cores split "
                             "evenly and the placement is measured")
    mix = tuple(1 / len(models) for _ in models) if args.mix is None else parse_mix(args.mix)
    placement = PlacementConfig(cfg, models, mix, advices=advices, attainment=args.attainment)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    result = run_placement(placement, say=lambda line: print(line, file=sys.stderr))
    print("\n".join([*result.colocation.lines(), *(result.mix.lines() if result.mix else []),
                     *result.memory.lines(), f"placement: {result.path}; report {result.report}",
                     f"serve it: {result.serve_command}",
                     result.time_to_plan]))
    return 0


def parse_mix(text: str) -> tuple[float, ...]:
    """--mix's shares, each in (0, 1], summing to 1."""
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--mix must be shares separated by commas, such as 0.7,0.3; got {text!r}") from None
    if not all(0 < s <= 1 for s in shares) or abs(sum(shares) - 1) > 1e-6:
        raise UsageError(f"--mix: each share must be in (0, 1] and they must sum to 1; got {text!r}")
    return shares


def summary(result) -> str:
    """What tune found, in a few lines: B_opt, the plan as measured, the launch command, where the report is."""
    advice, plan = result.advice, result.advice.replica_plan
    unit = "tok/s" if plan.throughput_metric != "request_throughput" else "req/s"
    lines = [f"B_opt = {advice.b_opt} (cap {advice.b_opt_max_batch}) under {advice.slo.text}: "
             f"{advice.throughput_at_b_opt:.1f} {unit}, {advice.throughput_fraction_at_b_opt:.0%} of the best measured"]
    if result.replica_record is not None and is_finished(result.replica_record):
        config = result.replica_record["config"]
        lines.append(f"replicas measured: {config['replicas']} x cap {config['max_batch']} "
                     f"(threads={config['threads']} each): "
                     f"{result.replica_record[plan.throughput_metric]:.1f} {unit}")
    lines.append(f"plan: {plan.replicas} x cap {plan.max_batch} ({plan.predicted_or_measured}), "
                 f"{plan.expected_throughput:.1f} {unit}, {plan.gain_vs_baseline:+.1%} vs the best single engine")
    if advice.capacity is not None:
        lines.append(f"capacity: {advice.capacity.summary}")
    lines.append(f"serve it: {advice.commands.serve}")
    lines.append(f"{result.points_run} points run in {result.wall_s:.0f} s; advice {result.advice_path}; "
                 f"report {result.report.html}")
    return "\n".join(lines)
