"""How long a small FedCore comparison takes end to end: the 30-client Synthetic(1,1) run of
tests/fedcore/test_integration.py (all four methods, 25 rounds of 10 clients, 10 epochs, batch 8,
30 % stragglers, seed 0, Flower's apps and strategy in-process), timed by the wall clock.

    python benchmarks/fedcore_run_time.py [--repeats 3]

One line per run (wall seconds, CPU seconds of this process, final accuracy of each method), then the median.
The test checks what the run finds; this script checks how fast it finds it, on a quiet machine.

Target: under 60 s on 2 cores (it was a test's limit until tests stopped depending on a quiet machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

from fedcore.config import RunConfig
from fedcore.data import DatasetSpec
from fedcore.results import summarise
from fedcore.runner import run_methods

TARGET_S = 60.0
CONFIG = RunConfig(dataset=DatasetSpec("synthetic", 1.0, 1.0), clients=30, per_round=10, rounds=25, epochs=10,
                   batch_size=8, lr=0.01, stragglers=0.3, seed=0, max_class=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls = []
    for run in range(1, args.repeats + 1):
        started, cpu = time.monotonic(), time.process_time()
        histories = run_methods(CONFIG, "inprocess")
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        walls.append(wall)
        methods = summarise(CONFIG, histories, "inprocess", targets=[0.5, 0.8])["methods"]
        accuracy = ", ".join(f"{name} {m['final_accuracy']:.3f}" for name, m in methods.items())
        print(f"run {run}: {wall:.1f} s wall, {cpu:.1f} s CPU; final accuracy {accuracy}", flush=True)
    median = statistics.median(walls)
    print(f"median {median:.1f} s wall over {len(walls)} runs: target < {TARGET_S:.0f} s "
          f"{'met' if median < TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
