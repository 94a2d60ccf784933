"""One client's work in one round, free of Flower: train by the plan, pick the coreset, keep the clock.

The clock counts samples processed divided by the client's speed. The coreset selection's real CPU time is
measured; with `charge_selection` it is added to the clock too, converted to training samples at the rate
this client's own first epoch ran (CPU seconds per sample), so a slow device also selects slowly, and the
coreset epochs then get that much less of the round's budget.

A FedCore client whose first full epoch does not fit the round (`plan.coreset_at_global`) picks its coreset
from proxies at the received model instead: that forward pass has no epoch 1 to come free with, so it is
always charged, at the rate a short probe of its training runs; the coreset gets E epochs in what is left."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from fedcore.clock import as_samples, probe_rate
from fedcore.coreset import MAX_CLASS, MEDOIDS_PER_BLOCK, Coreset, select
from fedcore.data import ClientData
from fedcore.models import Model, Params
from fedcore.schedule import Plan, global_coreset_size
from fedcore.training import SGD, train_epochs


@dataclass(frozen=True)
class LocalResult:
    params: Params | None  # None when the client dropped out
    samples: int  # samples processed (full epochs + coreset epochs)
    sim_time: float  # simulated time: (samples + charged CPU work, in samples) / speed
    coreset_size: int  # 0 without a coreset
    selection_cpu_s: float  # proxies (their forward pass) and clustering
    train_cpu_s: float

    @property
    def dropped(self) -> bool:
        return self.params is None


DROPPED = LocalResult(None, 0, 0.0, 0, 0.0, 0.0)
Choose = Callable[..., Coreset]  # select() with this client's labels, random stream and block layout bound


def local_update(model: Model, params: Params, data: ClientData, plan: Plan, speed: float, sgd: SGD,
                 rng: np.random.RandomState, *, charge_selection: bool = False,
                 max_class: int = MAX_CLASS, medoids_per_block: int = MEDOIDS_PER_BLOCK) -> LocalResult:
    """Run `plan` from the global `params`: full epochs, then (FedCore) the coreset epochs; `speed` in samples
    per simulated time unit. FedProx's proximal anchor is the global model in every epoch (the reference code
    re-anchored after epoch 1)."""
    if plan.dropped:
        return DROPPED
    choose: Choose = partial(select, labels=data.y, rng=rng, max_class=max_class, medoids_per_block=medoids_per_block)
    if plan.coreset_at_global:
        return _coreset_at_global(model, params, data, plan, speed, sgd, rng, choose, charge_selection)
    anchor = params if plan.proximal else None
    started = time.process_time()
    params, samples = train_epochs(model, params, data.x, data.y, plan.full_epochs, sgd, rng, anchor=anchor,
                                   max_samples=plan.sample_budget)
    train_cpu_s = time.process_time() - started
    if not plan.coreset_epochs:
        return LocalResult(params, samples, samples / speed, 0, 0.0, train_cpu_s)
    started = time.process_time()
    factors = model.proxy_factors(params, data.x, data.y)
    coreset = choose(factors, k=plan.coreset_size)
    selection_cpu_s = time.process_time() - started
    charged = as_samples(selection_cpu_s, train_cpu_s, samples) if charge_selection else 0.0
    budget = None if plan.sample_budget is None else int(plan.sample_budget - samples - charged)
    started = time.process_time()
    params, more = train_epochs(model, params, data.x[coreset.indices], data.y[coreset.indices],
                                plan.coreset_epochs, sgd, rng, weights=coreset.weights, anchor=anchor,
                                max_samples=budget)
    train_cpu_s += time.process_time() - started
    samples += more
    return LocalResult(params, samples, (samples + charged) / speed, coreset.size, selection_cpu_s, train_cpu_s)


def _coreset_at_global(model: Model, params: Params, data: ClientData, plan: Plan, speed: float, sgd: SGD,
                       rng: np.random.RandomState, choose: Choose, charge_selection: bool) -> LocalResult:
    """E epochs on a coreset chosen at the received model, after its forward pass, within the sample budget;
    dropped when the forward pass alone leaves no time for one training sample."""
    budget = plan.sample_budget
    if budget is None:
        raise ValueError("a coreset chosen at the received model needs the round's sample budget")
    started = time.process_time()
    factors = model.proxy_factors(params, data.x, data.y)
    forward_cpu_s = time.process_time() - started
    probe_cpu_s, probed = probe_rate(model, params, data, sgd)
    forward = as_samples(forward_cpu_s, probe_cpu_s, probed)
    k = global_coreset_size(budget, forward, plan.coreset_epochs)
    if k == 0:
        return DROPPED
    started = time.process_time()
    coreset = choose(factors, k=k)
    cluster_cpu_s = time.process_time() - started
    charged = forward + (as_samples(cluster_cpu_s, probe_cpu_s, probed) if charge_selection else 0.0)
    started = time.process_time()
    params, samples = train_epochs(model, params, data.x[coreset.indices], data.y[coreset.indices],
                                   plan.coreset_epochs, sgd, rng, weights=coreset.weights,
                                   anchor=params if plan.proximal else None, max_samples=int(budget - charged))
    train_cpu_s = time.process_time() - started
    return LocalResult(params, samples, (samples + charged) / speed, coreset.size, forward_cpu_s + cluster_cpu_s,
                       train_cpu_s)
