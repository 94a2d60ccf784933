"""The `fedcore` command: `fedcore run ...` compares the methods on one data set and writes
DIR/results.json and DIR/report.html. A bad flag prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fedcore import __version__

DESCRIPTION = ("fedcore compares federated learning methods (FedAvg, FedAvg dropping stragglers, FedProx, FedCore's "
               "coresets) on one data set, in simulated time with straggling clients.")
EXAMPLE = "fedcore run --dataset digits --rounds 50 --out fedcore-digits"  # the example every --help shows


class UsageError(Exception):
    """A user mistake: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message; one line is enough here
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    # Raw description and epilog: the example's line must stay as written; the description is one line.
    parser = _Parser(prog="fedcore", description=DESCRIPTION, epilog=f"Examples:\n  {EXAMPLE}",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fedcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    summary = "compare fedavg, fedavg-ds, fedprox and fedcore on one data set; write results.json and report.html"
    run = sub.add_parser("run", help=summary, description=summary, epilog=f"Examples:\n  {EXAMPLE}",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--dataset", default="synthetic:1,1",
                     help="synthetic:A,B (FedProx's synthetic data) | digits | mnist1d (default: %(default)s)")
    run.add_argument("--clients", type=int, default=30, help="clients in the federation (default: %(default)s)")
    run.add_argument("--per-round", type=int, default=10, help="clients sampled per round (default: %(default)s)")
    run.add_argument("--rounds", type=int, default=100, help="communication rounds (default: %(default)s)")
    run.add_argument("--epochs", type=int, default=10, help="local epochs E (default: %(default)s)")
    run.add_argument("--batch-size", type=int, default=8, help="local SGD batch size (default: %(default)s)")
    run.add_argument("--lr", type=float, default=0.01, help="local SGD learning rate (default: %(default)s)")
    run.add_argument("--mu", type=float, default=1.0, help="FedProx's proximal weight (default: %(default)s)")
    run.add_argument("--stragglers", type=float, default=0.3,
                     help="fraction of clients slower than the deadline (default: %(default)s)")
    run.add_argument("--methods", default="fedavg,fedavg-ds,fedprox,fedcore",
                     help="the methods to compare, comma-separated (default: %(default)s)")
    run.add_argument("--model", default="auto", help="auto | softmax | mlp (auto: softmax on synthetic, else mlp)")
    run.add_argument("--hidden", type=int, default=64, help="hidden units of the MLP (default: %(default)s)")
    run.add_argument("--max-class", type=int, default=None,
                     help="most samples clustered in one distance matrix (default 1024: 4 MiB of float32)")
    run.add_argument("--charge-selection", action="store_true",
                     help="add the coreset selection's measured CPU time to the client's simulated clock")
    run.add_argument("--targets", default="auto",
                     help="accuracies for time-to-accuracy, e.g. 0.6,0.7 (auto: 80/90/95 %% of the best final)")
    run.add_argument("--backend", default="inprocess", help="inprocess | flower-sim (Flower's Ray simulation)")
    run.add_argument("--seed", type=int, default=0,
                     help="seeds the data, its split, the model's first weights and each round's sampling "
                          "(default: %(default)s)")
    run.add_argument("--out", type=Path, default=Path("fedcore-run"), help="output directory")
    run.add_argument("--json", action="store_true", help="print results.json to stdout")
    return parser


def config_from_args(args: argparse.Namespace):
    from fedcore.config import RunConfig
    from fedcore.data import DatasetSpec
    from fedcore.runner import BACKENDS

    if args.backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    try:
        dataset = DatasetSpec.parse(args.dataset)
        targets = None if args.targets == "auto" else [float(t) for t in args.targets.split(",")]
        if targets is not None and not all(0 < t <= 1 for t in targets):
            raise ValueError(f"--targets must be accuracies in (0, 1], got {args.targets!r}")
        extra = {} if args.max_class is None else {"max_class": args.max_class}
        config = RunConfig(dataset=dataset, clients=args.clients, per_round=args.per_round, rounds=args.rounds,
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, mu=args.mu,
                           stragglers=args.stragglers, methods=tuple(m for m in args.methods.split(",") if m),
                           seed=args.seed, model=args.model, hidden=args.hidden,
                           charge_selection=args.charge_selection, **extra)
    except ValueError as exc:
        raise UsageError(str(exc).replace("could not convert string to float", "--targets: not a number")) from None
    return config, targets


def run_command(args: argparse.Namespace) -> int:
    config, targets = config_from_args(args)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: {exc.strerror}") from None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fedcore.report import write_report
    from fedcore.results import summarise
    from fedcore.runner import run_methods

    total = len(config.methods) * (config.rounds + 1)
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=args.json) as progress:
        task = progress.add_task("starting", total=total)
        histories = run_methods(config, args.backend,
                                on_round=lambda method, _: progress.update(task, advance=1, description=method))
    results = summarise(config, histories, args.backend, targets)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    write_report(results, args.out / "report.html")
    if args.json:
        print(json.dumps(results))
    else:
        print_summary(results, args.out)
    return 0


def print_summary(results: dict, out: Path) -> None:
    """The headline figures that fit a terminal; the report has them all."""
    from rich.console import Console
    from rich.table import Table

    from fedcore.report.page import _fmt

    target = results["targets"][-1]
    speedups = results["time_to_accuracy_speedup_vs_fedavg"]
    table = Table("method", "final acc", "worst round / deadline", "sim time", f"time to {target}", "vs fedavg",
                  title=f"{results['dataset']}: round deadline {results['deadline']:.4g} (simulated time)")
    for name, m in results["methods"].items():
        table.add_row(name, _fmt(m["final_accuracy"]), _fmt(m["round_time_over_deadline"]["max"]),
                      _fmt(m["sim_time_total"]), _fmt(m["time_to_accuracy"][target]),
                      _fmt(speedups.get(name, {}).get(target)))
    console = Console()
    console.print(table)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.html'}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        return run_command(args)
    except UsageError as exc:
        print(f"fedcore: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"fedcore: error: {exc.name} is missing: install the fedcore extra (pip install -e '.[fedcore]')",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
