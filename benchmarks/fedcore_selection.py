"""What FedCore's coreset selection costs next to the local training it saves: CPU time, per client size.

One FedCore client per size n (100 ... 5,000 samples, 60 features, 10 classes drawn as in FedProx's
synthetic set, so classes are unequal) runs one round as `fedcore run` would: a straggler that can process
half its full work by the deadline (n / (cp D) = --slowness = 2), E = 10 epochs, batch 8, so epoch 1 is full
and epochs 2..10 use a coreset of k = ceil((cp D E - n) / (E - 1)) = 0.44 n samples. Measured with
`time.process_time()` around the selection (proxies + distances + FasterPAM) and around the training
(all epochs), one BLAS thread, median of --repeats. The selection is measured at several class caps
(`--max-class`: a class above the cap is clustered in random blocks of at most that many samples; the
default is 1,024) and without one (one distance matrix per class, as the authors' code).

    python benchmarks/fedcore_selection.py [--sizes 100,250,500,1000,2500,5000] [--caps 1024,256,128,none]
                                           [--repeats 3] [--slowness 2]

Goal (issue 15): selection under 10 % of the client's local training time.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from fedcore.coreset import MAX_CLASS
from fedcore.data.base import ClientData
from fedcore.local import local_update
from fedcore.models import Model
from fedcore.schedule import plan_round
from fedcore.training import SGD

GOAL = 0.10
EPOCHS, BATCH, LR = 10, 8, 0.01


def client(n: int, seed: int) -> ClientData:
    """n samples of one FedProx Synthetic(1,1)-style client: x ~ N(v, diag(j^-1.2)), y = argmax(W x + b)."""
    rng = np.random.RandomState(seed)
    u, shift = rng.normal(0, 1), rng.normal(0, 1)
    x = rng.normal(rng.normal(shift, 1, 60), np.power(np.arange(1, 61), -0.6), (n, 60))
    y = np.argmax(x @ rng.normal(u, 1, (60, 10)) + rng.normal(u, 1, 10), axis=1)
    return ClientData(x, y, x[:0], y[:0])


def measure(model: Model, data: ClientData, slowness: float, max_class: int, repeats: int) -> dict:
    plan = plan_round("fedcore", data.n, 1.0, data.n / slowness, EPOCHS)
    runs = []
    for r in range(repeats):
        result = local_update(model, model.init(r), data, plan, 1.0, SGD(LR, BATCH), np.random.RandomState(r),
                              max_class=max_class)
        runs.append((result.selection_cpu_s, result.train_cpu_s, result.coreset_size))
    selection = statistics.median(s for s, _, _ in runs)
    training = statistics.median(t for _, t, _ in runs)
    return {"k": runs[0][2], "select_ms": selection * 1e3, "train_ms": training * 1e3,
            "share": selection / training, "select_us_per_sample": selection / data.n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,250,500,1000,2500,5000")
    parser.add_argument("--caps", default=f"{MAX_CLASS},256,128,none", help="class caps (--max-class) to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slowness", type=float, default=2.0, help="n / (cp D): full work over what fits")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    caps = [None if c == "none" else int(c) for c in args.caps.split(",")]
    print(f"{'model':8} {'n':>6} {'largest class':>13} {'k':>6} {'train ms':>9}"
          + "".join(f" {'cap ' + str(c or 'none'):>10} {'share':>7}" for c in caps) + "  (select ms, share)")
    worst = {c: 0.0 for c in caps}
    with threadpool_limits(limits=1, user_api="blas"):
        warm = client(300, seed=1)
        measure(Model(60, 10), warm, args.slowness, MAX_CLASS, 1)  # imports kmedoids, warms the caches
        for model in (Model(60, 10), Model(60, 10, hidden=64)):
            for n in sizes:
                data = client(n, seed=n)
                rows = [measure(model, data, args.slowness, c or n + 1, args.repeats) for c in caps]
                for c, row in zip(caps, rows, strict=True):
                    worst[c] = max(worst[c], row["share"])
                print(f"{model.name:8} {n:>6} {np.bincount(data.y).max():>13} {rows[0]['k']:>6} "
                      f"{statistics.median(r['train_ms'] for r in rows):>9.1f}"
                      + "".join(f" {r['select_ms']:>10.1f} {r['share']:>7.1%}" for r in rows))
    for c in caps:
        verdict = "meets" if worst[c] < GOAL else "misses"
        print(f"cap {c or 'none'}: worst selection share {worst[c]:.1%} ({verdict} the {GOAL:.0%} goal)")


if __name__ == "__main__":
    main()
