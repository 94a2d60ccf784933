"""The advice flags `advise`, `report` and `tune` share, and turning them into an AdviseConfig."""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from paretoserve.advise import AdviseConfig
from paretoserve.cli.common import UsageError

DEFAULTS = {name: field.default for name, field in AdviseConfig.model_fields.items()}
FLAGS = {"slo": "--slo", "slo_multiple": "--slo-multiple", "slo_ref_batch": "--slo-ref-batch",
         "slo_metric": "--slo-metric", "min_efficiency": "--min-efficiency", "device_memory": "--device-memory",
         "throughput_metric": "--throughput-metric", "max_replicas": "--max-replicas",
         "min_replica_gain": "--min-replica-gain", "hardware": "--hardware", "model_geometry": "--model-geometry"}


def add_advice_args(parser: argparse.ArgumentParser, title: str) -> None:
    """Add the SLO, efficiency, memory and replica flags as one argument group."""
    s = parser.add_argument_group(title)
    s.add_argument("--slo", default=None,
                   help="absolute limits, e.g. 'tpot_ms<=30,p99_ttft_ms<=2000' (a bare metric is the run's mean)")
    s.add_argument("--slo-multiple", type=float, default=None, help="relative limit: this multiple of ...")
    s.add_argument("--slo-ref-batch", type=int, default=DEFAULTS["slo_ref_batch"],
                   help="... the latency of the run nearest this batch (default: %(default)s) ...")
    s.add_argument("--slo-metric", default=DEFAULTS["slo_metric"],
                   help="... in this metric: tpot, itl, ttft, e2el, optionally p99_/median_ prefixed "
                        "(default: %(default)s = mean TPOT)")
    s.add_argument("--min-efficiency", type=float, default=DEFAULTS["min_efficiency"],
                   help="floor on batching efficiency T(B) / (B x T(1)), e.g. 0.2 (default: %(default)s = none)")
    s.add_argument("--device-memory", default=None,
                   help="device memory as bytes or with a unit (64GiB, 80GB); default: the sweep's environment")
    s.add_argument("--throughput-metric", default=DEFAULTS["throughput_metric"],
                   choices=("output_throughput", "total_token_throughput", "request_throughput"),
                   help="throughput the BCA and the plan compare (default: %(default)s)")
    s.add_argument("--max-replicas", type=int, default=DEFAULTS["max_replicas"],
                   help="most replicas a predicted plan uses (default: %(default)s)")
    s.add_argument("--min-replica-gain", type=float, default=DEFAULTS["min_replica_gain"],
                   help="throughput share a plan with more replicas must add over one with fewer, so a gain "
                        "within noise does not add engines (default: %(default)s)")
    s.add_argument("--hardware", default=None,
                   help="predict unmeasured replica plans with the roofline of this hardware (a `paretoserve "
                        "estimate --hardware` name or YAML), calibrated on the sweep (default: none, so a "
                        "predicted plan is the upper bound N x one engine)")
    s.add_argument("--model-geometry", default=None,
                   help="the model's .gguf or config.json for --hardware (default: the model the sweep names)")


def given_advice_flags(args: argparse.Namespace) -> list[str]:
    """The advice flags set to something other than their default."""
    return [flag for name, flag in FLAGS.items() if getattr(args, name) != DEFAULTS[name]]


def advise_config(args: argparse.Namespace, **extra) -> AdviseConfig:
    """The advice flags as advise's config; an out-of-range value is a UsageError naming its flag."""
    try:
        return AdviseConfig(**{name: getattr(args, name) for name in FLAGS}, **extra)
    except ValidationError as exc:
        raise flag_error(exc) from exc


def flag_error(exc: ValidationError) -> UsageError:
    """The first problem of an AdviseConfig as one line naming its flag."""
    first = exc.errors()[0]
    flag = FLAGS.get(str(first["loc"][0]), str(first["loc"][0]))
    message = first["msg"].removeprefix("Value error, ").removeprefix(flag + ": ").removeprefix(flag + " ")
    got = "" if "got " in message else f"; got {first.get('input')!r}"
    joint = " " if message.startswith("must") else ": "
    return UsageError(f"{flag}{joint}{message}{got}")
