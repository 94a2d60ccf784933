"""The advice flags, declared once: `advise`, `report` and `tune` take them all, `sweep --search bca` a subset.

Each flag is its AdviseConfig field with dashes (`slo_ref_batch` -> --slo-ref-batch), and its default is
the field's default.
"""

from __future__ import annotations

import argparse
import typing

from pydantic import ValidationError

from paretoserve.advise import AdviseConfig
from paretoserve.cli.common import UsageError

DEFAULTS = {name: field.default for name, field in AdviseConfig.model_fields.items()}

# AdviseConfig field -> argparse keywords besides the flag and its default, in the order the flags are listed.
ADVICE_FLAGS: dict[str, dict] = {
    "slo": dict(help="absolute limits, e.g. 'tpot_ms<=30,p99_ttft_ms<=2000' (a bare metric is the run's mean)"),
    "slo_multiple": dict(type=float, help="relative limit: this multiple of ..."),
    "slo_ref_batch": dict(type=int, help="... the latency of the run nearest this batch (default: %(default)s) ..."),
    "slo_metric": dict(help="... in this metric: tpot, itl, ttft, e2el, optionally p99_/median_ prefixed "
                            "(default: %(default)s = mean TPOT)"),
    "min_efficiency": dict(type=float, help="floor on batching efficiency T(B) / (B x T(1)), e.g. 0.2 "
                                            "(default: %(default)s = none)"),
    "device_memory": dict(help="device memory as bytes or with a unit (64GiB, 80GB); default: the sweep's "
                               "environment"),
    "throughput_metric": dict(choices=typing.get_args(AdviseConfig.model_fields["throughput_metric"].annotation),
                              help="throughput the BCA and the plan compare (default: %(default)s)"),
    "max_replicas": dict(type=int, help="most replicas a predicted plan uses (default: %(default)s)"),
    "min_replica_gain": dict(type=float, help="throughput share a plan with more replicas must add over one with "
                                              "fewer, so a gain within noise does not add engines (default: "
                                              "%(default)s)"),
    "hardware": dict(help="predict unmeasured replica plans with the roofline of this hardware (a `paretoserve "
                          "estimate --hardware` name or YAML), calibrated on the sweep (default: none, so a "
                          "predicted plan is the upper bound N x one engine)"),
    "model_geometry": dict(help="the model's .gguf or config.json for --hardware (default: the model the sweep "
                                "names)"),
}
FLAGS = {name: "--" + name.replace("_", "-") for name in ADVICE_FLAGS}


def add_advice_flags(group, names=tuple(ADVICE_FLAGS), help: dict[str, str] | None = None) -> None:
    """Add the advice flags `names` to `group`; `help` replaces the help of a flag that means more to this command."""
    for name in names:
        kwargs = {**ADVICE_FLAGS[name], **({"help": help[name]} if help and name in help else {})}
        group.add_argument(FLAGS[name], default=DEFAULTS[name], **kwargs)


def add_advice_args(parser: argparse.ArgumentParser, title: str, per_model: bool = False) -> None:
    """Add the SLO, efficiency, memory and replica flags as one argument group; `per_model`: --slo may be repeated,
    once for every --model or once per --model (args.slo is then a list or None)."""
    group = parser.add_argument_group(title)
    if not per_model:
        add_advice_flags(group)
        return
    group.add_argument(FLAGS["slo"], action="append", default=None,
                       help=ADVICE_FLAGS["slo"]["help"] + "; with several --model, once for every model or once per "
                                                          "--model, in order")
    add_advice_flags(group, tuple(name for name in ADVICE_FLAGS if name != "slo"))


def given_advice_flags(args: argparse.Namespace) -> list[str]:
    """The advice flags set to something other than their default."""
    return [flag for name, flag in FLAGS.items() if getattr(args, name) != DEFAULTS[name]]


def advise_config(args: argparse.Namespace, names=tuple(ADVICE_FLAGS), **extra) -> AdviseConfig:
    """The advice flags `names` as advise's config; an out-of-range value is a UsageError naming its flag."""
    try:
        return AdviseConfig(**{**{name: getattr(args, name) for name in names}, **extra})
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
