"""The `paretoserve` command line: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys

from paretoserve import __version__
from paretoserve.cli.common import interrupted_status
from paretoserve.limits import UserError

# name -> (module in this package, one-line help); only the module of the command being run is imported,
# so an engine or replica start does not pay for the report's plotting imports.
COMMANDS = {
    "tune": ("tune_cmd", "the main job: search sweep -> advise -> verify replicas -> report"),
    "engine": ("engine_cmd", "run one embedded llama.cpp engine behind an OpenAI API"),
    "bench": ("bench_cmd", "drive a workload through an OpenAI-compatible endpoint and summarise it"),
    "capacity": ("capacity_cmd", "the highest request rate a served plan sustains within an SLO, and past it"),
    "trace": ("trace_cmd", "write a diurnal trace (a ramp with bursts) for --dataset trace:, capacity --replay, tune"),
    "sweep": ("sweep_cmd", "measure an engine across batch caps, KV budgets and threads"),
    "import": ("import_cmd", "turn another tool's benchmark results into a sweep directory"),
    "advise": ("advise_cmd", "BCA batch size, KV memory freed, Pareto frontiers, replica plan"),
    "report": ("report_cmd", "one self-contained HTML report (and PNGs) of a sweep directory"),
    "serve": ("serve_cmd", "run N engine replicas behind a load-balancing OpenAI-compatible router"),
    "estimate": ("estimate_cmd", "roofline model of decoding: where throughput plateaus and why"),
    "demo": ("demo_cmd", "a one-minute smoke run: engine + concurrent requests + throughput"),
}


DESCRIPTION = ("paretoserve finds the batch cap, KV budget and replica count that give a small language model the "
               "most throughput on one device within a latency SLO, and serves that plan: `paretoserve tune` does it "
               "all in one run.")
EXAMPLES = "Examples:"  # the first line of every parser's epilog; each line under it is one command to run


def examples(*commands: str) -> str:
    """The epilog of a command's --help: `Examples:` and one working command line per line."""
    return "\n".join([EXAMPLES, *(f"  {command}" for command in commands)])


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, except that an `Examples:` epilog keeps its lines as written rather than refilled."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose --help keeps the examples' lines; its subparsers are CommandParsers too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser, with the full flags of the subcommand named in `argv` (every one's help line either way)."""
    parser = CommandParser(prog="paretoserve", description=DESCRIPTION,
                           epilog=examples("paretoserve tune --out tune-out",
                                           "paretoserve serve --plan tune-out/advice.json --port 8000"))
    parser.add_argument("--version", action="version", version=f"paretoserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module, help) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(f"paretoserve.cli.{module}").add_parser(subparsers, help)
        else:
            subparsers.add_parser(name, help=help)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user mistakes (any UserError) print one line naming the flag and exit with status 2,
    and a signal ends it with 128 + its number."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args) or 0
    except UserError as exc:
        print(f"paretoserve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return interrupted_status(exc)
    except BrokenPipeError:  # e.g. `paretoserve advise --json | head`: the reader left, nothing to report
        sys.stderr.close()
        return 1
