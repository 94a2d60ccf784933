"""`paretoserve advise DIR`: B_opt under a latency SLO, its KV need and the memory freed, the Pareto frontiers,
the replica plan and ready-to-run launch commands, from a sweep directory (own or imported)."""

from __future__ import annotations

import argparse
import json

from paretoserve.advise import AdviseConfig, AdviseError, advise
from paretoserve.advise.render import print_advice
from paretoserve.cli.common import UsageError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("advise", help="BCA batch size, KV memory freed, Pareto frontiers, replica plan",
                              description=__doc__)
    p.add_argument("dir", metavar="DIR", help="sweep directory (paretoserve sweep or import vllm)")
    s = p.add_argument_group("SLO (default: the paper's 3 x mean TPOT at B=32)")
    s.add_argument("--slo", default=None,
                   help="absolute limits, e.g. 'tpot_ms<=30,p99_ttft_ms<=2000' (a bare metric is the run's mean)")
    s.add_argument("--slo-multiple", type=float, default=None, help="relative limit: this multiple of ...")
    s.add_argument("--slo-ref-batch", type=int, default=32, help="... the latency of the run nearest this batch "
                                                                 "(default: 32) ...")
    s.add_argument("--slo-metric", default="tpot", help="... in this metric: tpot, itl, ttft, e2el, optionally "
                                                        "p99_/median_ prefixed (default: tpot = mean TPOT)")
    s.add_argument("--min-efficiency", type=float, default=0.0,
                   help="floor on batching efficiency T(B) / (B x T(1)), e.g. 0.2 (default: 0 = none)")
    p.add_argument("--device-memory", default=None,
                   help="device memory as bytes or with a unit (64GiB, 80GB); default: the sweep's environment")
    p.add_argument("--throughput-metric", default="output_throughput",
                   choices=("output_throughput", "total_token_throughput", "request_throughput"),
                   help="throughput the BCA and the plan compare (default: %(default)s)")
    p.add_argument("--max-replicas", type=int, default=8, help="most replicas a predicted plan uses (default: 8)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.slo_ref_batch < 1:
        raise UsageError(f"--slo-ref-batch must be >= 1; got {args.slo_ref_batch}")
    if args.max_replicas < 1:
        raise UsageError(f"--max-replicas must be >= 1; got {args.max_replicas}")
    config = AdviseConfig(slo=args.slo, slo_multiple=args.slo_multiple, slo_ref_batch=args.slo_ref_batch,
                          slo_metric=args.slo_metric, min_efficiency=args.min_efficiency,
                          device_memory=args.device_memory, throughput_metric=args.throughput_metric,
                          max_replicas=args.max_replicas)
    try:
        advice = advise(args.dir, config)
    except AdviseError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        print(json.dumps(advice.model_dump(), indent=2))
    else:
        print_advice(advice)
    return 0
