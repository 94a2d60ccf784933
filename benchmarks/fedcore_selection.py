"""What FedCore's coreset selection costs next to the local training it saves: CPU time, per client size.

One FedCore client per size n (100 ... 5,000 samples, 60 features, 10 classes drawn as in FedProx's
synthetic set, so classes are unequal) runs one round as `fedcore run` would: a straggler that can process
half its full work by the deadline (n / (cp D) = --slowness = 2), E = 10 epochs, batch 8, so epoch 1 is full
and epochs 2..10 use a coreset of k = ceil((cp D E - n) / (E - 1)) = 0.44 n samples. Measured with
`time.process_time()` around the selection (proxies + distances + FasterPAM) and around the training
(all epochs) of the same `local_update` call, one BLAS thread, median of --repeats rounds. Two layouts:
`fedcore run`'s (each class in random blocks of MEDOIDS_PER_BLOCK to twice that many medoids, --max-class
1,024; a client's layout is planned in its first round and reused, so "1st" is that first round's selection),
and one distance matrix per class, as the authors' code (--no-per-class skips it: seconds at 5,000). Each
layout is measured in a pass of its own, so that the per-class matrices' memory churn does not land on the
other's measurements.

    python benchmarks/fedcore_selection.py [--sizes 100,250,500,1000,2500,5000] [--repeats 5] [--slowness 2]
                                           [--no-per-class]

Goal (issue 15): selection under 10 % of the client's local training time.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from fedcore import coreset
from fedcore.coreset import MAX_CLASS, MEDOIDS_PER_BLOCK
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


def measure(model: Model, data: ClientData, slowness: float, repeats: int, per_class: bool = False) -> dict:
    """Median selection and training CPU time of `repeats` rounds of one client (per_class: the authors' layout)."""
    plan = plan_round("fedcore", data.n, 1.0, data.n / slowness, EPOCHS)
    layout = {"max_class": data.n, "medoids_per_block": data.n} if per_class else {
        "max_class": MAX_CLASS, "medoids_per_block": MEDOIDS_PER_BLOCK}
    coreset._layout.cache_clear()  # the first round plans the client's layout; later rounds reuse it
    runs = []
    for r in range(repeats):
        result = local_update(model, model.init(r), data, plan, 1.0, SGD(LR, BATCH), np.random.RandomState(r),
                              **layout)
        runs.append((result.selection_cpu_s, result.train_cpu_s, result.coreset_size))
    selection = statistics.median(s for s, _, _ in runs)
    training = statistics.median(t for _, t, _ in runs)
    return {"k": runs[0][2], "select_ms": selection * 1e3, "first_ms": runs[0][0] * 1e3, "train_ms": training * 1e3,
            "share": selection / training}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,250,500,1000,2500,5000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slowness", type=float, default=2.0, help="n / (cp D): full work over what fits")
    parser.add_argument("--no-per-class", dest="per_class", action="store_false",
                        help="skip the authors' layout (one distance matrix per class)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    layouts = [False, True] if args.per_class else [False]
    print(f"{'model':8} {'n':>6} {'largest class':>13} {'k':>6} {'train ms':>9} {'blocks':>9} {'share':>7} {'1st':>6}"
          + (f" {'per class':>9} {'share':>7}" if args.per_class else "") + "  (select ms, share of training)")
    worst = {layout: 0.0 for layout in layouts}
    models, results = (Model(60, 10), Model(60, 10, hidden=64)), {}
    with threadpool_limits(limits=1, user_api="blas"):
        warm = client(300, seed=1)
        measure(Model(60, 10), warm, args.slowness, 1)  # imports kmedoids, warms the caches
        for per_class in layouts:  # one pass per layout: the per-class matrices' memory churn stays in its own
            for model in models:
                for n in sizes:
                    results[model.name, n, per_class] = measure(model, client(n, seed=n), args.slowness,
                                                                args.repeats, per_class)
    for model in models:
        for n in sizes:
            rows = [results[model.name, n, per_class] for per_class in layouts]
            for layout, row in zip(layouts, rows, strict=True):
                worst[layout] = max(worst[layout], row["share"])
            ours = rows[0]
            print(f"{model.name:8} {n:>6} {np.bincount(client(n, seed=n).y).max():>13} {ours['k']:>6} "
                  f"{ours['train_ms']:>9.1f} {ours['select_ms']:>9.2f} {ours['share']:>7.1%} {ours['first_ms']:>6.2f}"
                  + "".join(f" {r['select_ms']:>9.2f} {r['share']:>7.1%}" for r in rows[1:]))
    for layout in layouts:
        verdict = "meets" if worst[layout] < GOAL else "misses"
        name = "one matrix per class (the authors')" if layout else f"blocks of >= {MEDOIDS_PER_BLOCK} medoids"
        print(f"{name}: worst selection share {worst[layout]:.1%} ({verdict} the {GOAL:.0%} goal)")


if __name__ == "__main__":
    main()
