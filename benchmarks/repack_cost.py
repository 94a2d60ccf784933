"""What each `--repack` placement of the weights costs: bare batched-decode tok/s at B = 1 and B = 64.

For every mode (`all` = llama.cpp's default, `no-amx` = CPU_REPACK only, `off` = no repacking, as
llama-server's --no-repack) a child process loads the model once, as an engine would, and measures each
batch (several models loaded in one process ran the second one up to 4x slower, whatever its mode).
The modes take turns, round after round (A B C A B C ...), so drift on the machine hits every mode
alike. Printed: each mode's median tok/s with its range over the rounds, and the ratio of medians to
`all`; where there is no AMX, `no-amx` and `all` run the same kernels, so their gap is the noise.
`all` is skipped where this llama.cpp build would use AMX, which crashes (llama.cpp issue 20824).

    python benchmarks/repack_cost.py [--batches 1,64] [--rounds 5] [--input-tokens 32]
                                     [--output-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from engine_batch_curve import bare_loop, prompts

from paretoserve.engine.llama_load import load_model, resolve_repack
from paretoserve.engine.llama_runner import quiet_llama_logs
from paretoserve.model import resolve_model


def measure(mode: str, batches: list[int], args: argparse.Namespace) -> dict[int, float]:
    """Generated tok/s per batch of one fresh process that loads the weights with `--repack mode`."""
    argv = [sys.executable, __file__, "--child", mode, "--batches", ",".join(map(str, batches)),
            "--input-tokens", str(args.input_tokens), "--output-tokens", str(args.output_tokens),
            "--threads", str(args.threads)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return {int(batch): rate for batch, rate in json.loads(out).items()}


def child(mode: str, batches: list[int], args: argparse.Namespace) -> None:
    quiet_llama_logs()
    model = load_model(resolve_model("default").path, resolve_repack(mode))
    rates = {}
    for batch in batches:
        ids = prompts(batch, args.input_tokens)
        bare_loop(model, batch, ids, 4, args.threads)  # warm-up: first touch of the buffers
        rates[batch] = bare_loop(model, batch, ids, args.output_tokens, args.threads)
    print(json.dumps(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        return child(args.child, batches, args)
    modes = ["all", "no-amx", "off"]
    if resolve_repack("auto").mode != "all":
        modes.remove("all")
        print("this llama.cpp build would repack into AMX, which crashes: `all` is not measured")
    print(f"input {args.input_tokens} tokens, output {args.output_tokens} tokens, {args.threads} threads, "
          f"{args.rounds} rounds; tok/s is the median over rounds")
    rates: dict[tuple[str, int], list[float]] = {(m, b): [] for m in modes for b in batches}
    for _ in range(args.rounds):
        for mode in modes:
            for batch, rate in measure(mode, batches, args).items():
                rates[mode, batch].append(rate)
    base = modes[0]
    print(f"{'batch':>5} " + " ".join(f"{m + ' tok/s (min-max)':>26}" for m in modes)
          + " " + " ".join(f"{m + '/' + base:>12}" for m in modes[1:]))
    for batch in batches:
        med = {m: statistics.median(rates[m, batch]) for m in modes}
        spread = {m: f"{med[m]:.1f} ({min(rates[m, batch]):.0f}-{max(rates[m, batch]):.0f})" for m in modes}
        print(f"{batch:>5} " + " ".join(f"{spread[m]:>26}" for m in modes)
              + " " + " ".join(f"{med[m] / med[base]:>12.2f}" for m in modes[1:]), flush=True)


if __name__ == "__main__":
    main()
