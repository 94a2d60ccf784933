"""`paretoserve report`: one self-contained HTML report of a sweep (curves, frontiers, memory, energy, replicas,
the recommendation and its launch commands), with every plot also written as a PNG beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from paretoserve.advise import AdviseConfig
from paretoserve.cli.common import UsageError
from paretoserve.report import ReportConfig, ReportError, compute_advice, load_advice_file, write_report

ADVISE_DEFAULTS = {name: field.default for name, field in AdviseConfig.model_fields.items()}
FLAGS = {"slo": "--slo", "slo_multiple": "--slo-multiple", "slo_ref_batch": "--slo-ref-batch",
         "slo_metric": "--slo-metric", "min_efficiency": "--min-efficiency", "device_memory": "--device-memory",
         "throughput_metric": "--throughput-metric", "max_replicas": "--max-replicas"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML report (and PNGs) of a sweep directory",
                              description=__doc__)
    p.add_argument("dir", metavar="DIR", type=Path, help="sweep directory (from `sweep` or `import vllm`)")
    p.add_argument("-o", "--out", type=Path, default=Path("report.html"),
                   help="HTML file to write; the PNGs go beside it as <name>_<plot>.png (default: report.html)")
    p.add_argument("--advice", type=Path, default=None,
                   help="a saved `advise --json` output to show instead of advising here (then without the "
                        "advice flags)")
    s = p.add_argument_group("advice, as `paretoserve advise` takes it (default: the paper's 3 x mean TPOT at B=32)")
    s.add_argument("--slo", default=None, help="absolute limits, e.g. 'tpot_ms<=30,p99_ttft_ms<=2000'")
    s.add_argument("--slo-multiple", type=float, default=None, help="relative limit: this multiple of ...")
    s.add_argument("--slo-ref-batch", type=int, default=ADVISE_DEFAULTS["slo_ref_batch"],
                   help="... the latency of the run nearest this batch (default: %(default)s) ...")
    s.add_argument("--slo-metric", default=ADVISE_DEFAULTS["slo_metric"],
                   help="... in this metric: tpot, itl, ttft, e2el, optionally p99_/median_ prefixed "
                        "(default: %(default)s)")
    s.add_argument("--min-efficiency", type=float, default=ADVISE_DEFAULTS["min_efficiency"],
                   help="floor on batching efficiency T(B) / (B x T(1)) (default: %(default)s = none)")
    s.add_argument("--device-memory", default=None,
                   help="device memory as bytes or with a unit (64GiB, 80GB); default: the sweep's environment")
    s.add_argument("--throughput-metric", default=ADVISE_DEFAULTS["throughput_metric"],
                   choices=("output_throughput", "total_token_throughput", "request_throughput"),
                   help="throughput the BCA and the plan compare (default: %(default)s)")
    s.add_argument("--max-replicas", type=int, default=ADVISE_DEFAULTS["max_replicas"],
                   help="most replicas a predicted plan uses (default: %(default)s)")
    p.add_argument("--dpi", type=int, default=ReportConfig.dpi, help="PNG resolution (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = ReportConfig(dpi=args.dpi)
        if args.advice is not None:
            given = [flag for name, flag in FLAGS.items() if getattr(args, name) != ADVISE_DEFAULTS[name]]
            if given:
                raise UsageError(f"--advice shows a saved advice as it is; {', '.join(given)} apply only when "
                                 "the report advises itself: drop them or drop --advice")
            advice, reason = load_advice_file(args.advice), None
        else:
            advice, reason = compute_advice(args.dir, advise_config(args))
        files = write_report(args.dir, args.out, advice=advice, no_advice_reason=reason, config=config)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    verdict = f"B_opt = {files.b_opt}" if files.b_opt is not None else f"no recommendation: {reason}"
    print(f"report: {files.html} ({len(files.plots)} plots beside it); {verdict}")
    return 0


def advise_config(args: argparse.Namespace) -> AdviseConfig:
    """The advice flags as advise's config; an out-of-range value is a UsageError naming its flag."""
    try:
        return AdviseConfig(**{name: getattr(args, name) for name in FLAGS})
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = FLAGS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise UsageError(f"{flag}: {first['msg']}; got {first.get('input')!r}") from exc
