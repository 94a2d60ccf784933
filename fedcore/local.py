"""One client's work in one round, free of Flower: train by the plan, pick the coreset, keep the clock.

The clock counts samples processed divided by the client's speed. The coreset selection's real CPU time is
measured; with `charge_selection` it is added to the clock too, converted to training samples at the rate
this client's own first epoch ran (CPU seconds per sample), so a slow device also selects slowly, and the
coreset epochs then get that much less of the round's budget."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fedcore.coreset import MAX_CLASS, MEDOIDS_PER_BLOCK, select
from fedcore.data import ClientData
from fedcore.models import Model, Params
from fedcore.schedule import Plan
from fedcore.training import SGD, train_epochs


@dataclass(frozen=True)
class LocalResult:
    params: Params | None  # None when the client dropped out
    samples: int  # samples processed (full epochs + coreset epochs)
    sim_time: float  # simulated seconds: samples / speed (+ selection, when charged)
    coreset_size: int  # 0 without a coreset
    selection_cpu_s: float
    train_cpu_s: float

    @property
    def dropped(self) -> bool:
        return self.params is None


DROPPED = LocalResult(None, 0, 0.0, 0, 0.0, 0.0)


def local_update(model: Model, params: Params, data: ClientData, plan: Plan, speed: float, sgd: SGD,
                 rng: np.random.RandomState, *, charge_selection: bool = False,
                 max_class: int = MAX_CLASS, medoids_per_block: int = MEDOIDS_PER_BLOCK) -> LocalResult:
    """Run `plan` from the global `params`: full epochs, then (FedCore) the coreset epochs.
    FedProx's proximal anchor is the global model in every epoch (the reference code re-anchored after epoch 1)."""
    if plan.dropped:
        return DROPPED
    anchor = params if plan.proximal else None
    started = time.process_time()
    params, samples = train_epochs(model, params, data.x, data.y, plan.full_epochs, sgd, rng, anchor=anchor,
                                   max_samples=plan.sample_budget)
    train_cpu_s = time.process_time() - started
    selection_cpu_s, coreset_size, charged_samples = 0.0, 0, 0.0
    if plan.coreset_epochs:
        started = time.process_time()
        coreset = select(model.proxy_factors(params, data.x, data.y), data.y, plan.coreset_size, rng,
                         max_class=max_class, medoids_per_block=medoids_per_block)
        selection_cpu_s = time.process_time() - started
        coreset_size = coreset.size
        if charge_selection and train_cpu_s > 0:
            charged_samples = selection_cpu_s * samples / train_cpu_s
        budget = None if plan.sample_budget is None else int(plan.sample_budget - samples - charged_samples)
        started = time.process_time()
        params, more = train_epochs(model, params, data.x[coreset.indices], data.y[coreset.indices],
                                    plan.coreset_epochs, sgd, rng, weights=coreset.weights, anchor=anchor,
                                    max_samples=budget)
        train_cpu_s += time.process_time() - started
        samples += more
    return LocalResult(params, samples, (samples + charged_samples) / speed, coreset_size, selection_cpu_s,
                       train_cpu_s)
