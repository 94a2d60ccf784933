"""Two models on this machine at a 50/50 mix: the placement (each model pinned to a core of its own, one router)
against time-sharing (one engine per model, each on every core) and against each model alone on the machine.

Gemma 3 270M (`--model default`) and SmolLM2 135M (`--model smollm2`, the smollm2 extra), each with one replica of
one thread in the placement; every model of an arrangement is loaded at once in a closed loop of its batch cap
(saturation), the same token lengths for both, through `paretoserve serve`'s router, on engines started afresh
for each run (sweep/colocation.py: `measure_colocation` over `LiveColocation`). Each round runs every arrangement
once (placement, time-sharing, solo Gemma, solo SmolLM2), so a busy spell of this shared machine falls on all
alike; each figure is the median over the rounds.

Printed: each run's rates and what the sampler saw of each model (its mean running batch, within its cap: the
router's metrics of the other model left out) and the other processes' busy cores; then each model's rates,
the mix throughput of each arrangement (min_i(rate_i / share_i), requests/s) and their ratios.

    python benchmarks/colocation.py [--caps 8,8] [--mix 0.5,0.5] [--input-tokens 32] [--output-tokens 16]
                                    [--duration 12] [--repeats 2] [--log-dir DIR] [--json out.json]

The caps: a look at one engine per model on one core (32 + 32 tokens, this machine with others busy) found the
request rate nearly flat from batch 1 to 4 and nearly doubling at 8 (Gemma 0.67 -> 1.28 req/s, SmolLM2 0.83 -> 1.27),
then still growing to 16 (2.33 and 1.83). The default is 8: most of that gain, and a closed loop of 16 output tokens
at batch 8 ends a wave of requests every few seconds, so a 12-s window holds several (at 16 it held one). The full
per-model search is `tune`'s job.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.cli.common import stop_on_sigterm
from paretoserve.engine.config import available_cores, ctx_for
from paretoserve.results.setup import ReplicaSetup
from paretoserve.sweep.colocation import (
    Arrangement,
    ColocatedModel,
    ColocationConfig,
    LiveColocation,
    measure_colocation,
)

MODELS = ("default", "smollm2")


@dataclass
class Watched:
    """LiveColocation, printing what each run's samples say about each model beside its rate."""

    live: LiveColocation

    def run(self, arrangement: Arrangement) -> list[dict]:
        results = self.live.run(arrangement)
        for load, r in zip(arrangement.loads, results, strict=True):
            running = r.get("mean_running")
            others = r.get("other_cpu_cores")
            print(f"    {arrangement.label:<34} {load.served_model_name:<28} cap {load.concurrency:>3}: "
                  f"{r['request_throughput']:.2f} req/s, {r['output_throughput']:.1f} tok/s, mean running "
                  f"{running if running is None else f'{running:.1f}'}, {r['completed']} ok / {r['failed']} failed, "
                  f"other processes {others if others is None else f'{others:.2f}'} cores", flush=True)
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caps", default="8,8", help="each model's batch cap (Gemma, SmolLM2)")
    ap.add_argument("--mix", default="0.5,0.5", help="each model's share of the requests")
    ap.add_argument("--input-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=16)
    ap.add_argument("--duration", type=float, default=12.0, help="seconds of load per run")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of every arrangement")
    ap.add_argument("--log-dir", default=None, help="serve and engine logs (default: a temporary directory)")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # unwinds through ReplicaServer, which stops the engines
    if available_cores() < 2:
        raise SystemExit("needs 2 usable cores (one for each model in the placement)")
    caps = [int(c) for c in args.caps.split(",")]
    shares = [float(s) for s in args.mix.split(",")]
    models = tuple(ColocatedModel(name, ReplicaSetup(cap, None, 1, 1), share)
                   for name, cap, share in zip(MODELS, caps, shares, strict=True))
    bench = BenchConfig(url="http://127.0.0.1:1", input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                        output_tokens=TokenRange(args.output_tokens, args.output_tokens), duration_s=args.duration,
                        energy="none")
    cfg = ColocationConfig(models, bench, repeats=args.repeats,
                           ctx_per_seq=ctx_for(args.input_tokens, args.output_tokens))
    print(f"Gemma 3 270M and SmolLM2 135M, caps {args.caps}, mix {args.mix}, {args.input_tokens} input / "
          f"{args.output_tokens} output tokens, ignore_eos, streamed, {args.duration:g} s of load per run, "
          f"{args.repeats} rounds, {available_cores()} cores; other processes on this machine add noise", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        live = LiveColocation(Path(args.log_dir or tmp))
        result = measure_colocation(cfg, Watched(live), lambda line: print("  " + line, flush=True))
    print()
    print("\n".join(result.lines()))
    place, shared, solo = (result.mix_rps(k) for k in ("placement", "time-sharing", "solo"))
    print(f"\nplacement / time-sharing: {place / shared:.2f}; placement / each model alone on the machine: "
          + ", ".join(f"{m.name} {m.interference:.2f}" for m in result.models if m.interference is not None)
          + f"; placement / one device per model (per device): {place / (solo / result.devices):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "result": result.figures().to_dict()}, indent=1))


if __name__ == "__main__":
    main()
