"""From the methods' histories to `results.json`: the headline figures and every round."""

from __future__ import annotations

import dataclasses

import numpy as np

from fedcore.config import RunConfig
from fedcore.history import History, RoundRecord

TARGET_FRACTIONS = (0.8, 0.9, 0.95)  # default targets: these fractions of the best final accuracy
LAST_ROUNDS = 10  # final_accuracy_last10: the mean over the last rounds, steadier than the last one alone


def accuracy(r: RoundRecord) -> float:
    """A round's test accuracy; every round is evaluated before results are summarised."""
    if r.accuracy is None:
        raise ValueError(f"round {r.round} has no evaluation")
    return r.accuracy


def default_targets(histories: dict[str, History]) -> list[float]:
    best = max(accuracy(h.rounds[-1]) for h in histories.values())
    return sorted({round(f * best, 3) for f in TARGET_FRACTIONS})


def target_key(target: float) -> str:
    return f"{target:.3f}"


def time_to_accuracy(history: History, target: float) -> float | None:
    """Simulated time at the end of the first round whose model reaches `target` (None: never)."""
    return next((r.sim_time for r in history.rounds if accuracy(r) >= target), None)


def summarise_method(history: History, targets: list[float]) -> dict:
    trained = [r for r in history.rounds if r.round > 0]
    over = np.array([r.round_time / history.round_deadline for r in trained if r.round_time > 0] or [0.0])
    clients = [c for r in trained for c in r.clients]
    selection = sum(c.selection_cpu_s for c in clients)
    training = sum(c.train_cpu_s for c in clients)
    last = [accuracy(r) for r in history.rounds[-LAST_ROUNDS:]]
    return {
        "final_accuracy": accuracy(history.rounds[-1]),
        "final_accuracy_last10": float(np.mean(last)),
        "best_accuracy": max(accuracy(r) for r in history.rounds),
        "sim_time_total": history.clock,
        "time_to_accuracy": {target_key(t): time_to_accuracy(history, t) for t in targets},
        "round_time_over_deadline": {"max": float(over.max()), "median": float(np.median(over))},
        "selection_cpu_s": selection,
        "train_cpu_s": training,
        "selection_share_of_training": selection / training if training else 0.0,
        "client_rounds": len(clients),
        "dropped_client_rounds": sum(c.dropped for c in clients),
        "coreset_client_rounds": sum(c.coreset_size > 0 for c in clients),
        # not one full epoch in the deadline: FedProx's partial epoch, FedCore's coreset at the received model
        "partial_epoch_client_rounds": sum(not c.dropped and c.samples < c.n for c in clients),
        "rounds": [r.to_dict() for r in history.rounds],
    }


def summarise(config: RunConfig, histories: dict[str, History], backend: str,
              targets: list[float] | None = None) -> dict:
    first = next(iter(histories.values()))
    targets = default_targets(histories) if targets is None else sorted(targets)
    methods = {name: summarise_method(h, targets) for name, h in histories.items()}
    speedup = {}
    if "fedavg" in methods:
        base = methods["fedavg"]["time_to_accuracy"]
        for name, summary in methods.items():
            speedup[name] = {key: (base[key] / t if base[key] is not None and t else None)
                             for key, t in summary["time_to_accuracy"].items()}
    settings = dataclasses.asdict(config)
    settings["dataset"] = str(config.dataset)
    return {
        "dataset": str(config.dataset),
        "backend": backend,
        "config": settings,
        "time_unit": "simulated: samples processed / compute power (a speed-1 client takes 1 per sample)",
        "deadline": first.round_deadline,
        "epoch_deadline": first.epoch_deadline,
        "clients": {"n": first.sizes, "speed": first.speeds},
        "targets": [target_key(t) for t in targets],
        "methods": methods,
        "time_to_accuracy_speedup_vs_fedavg": speedup,
    }
