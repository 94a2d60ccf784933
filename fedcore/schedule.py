"""The straggler model and each method's rule for a client's round: speeds, deadlines, who trains how much.

Time is simulated: a client processes `speed` samples per time unit, so its round takes samples / speed.
Everything here is a pure function of the clients' sizes, as in the authors' code."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METHODS = ("fedavg", "fedavg-ds", "fedprox", "fedcore")
DATA_COMPUTE_CORRELATION = 0.5  # rho in the authors' code: larger clients are faster, not in proportion
MIN_SPEED = 0.1  # the linear speed rule can reach 0 or below for a very small client among equal ones


def compute_power(sizes: np.ndarray, rho: float = DATA_COMPUTE_CORRELATION) -> np.ndarray:
    """cp_i = 1 + rho * 0.5 * (n_i - mean n) / std n (all 1 when every client has the same size)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    std = sizes.std()
    if std == 0:
        return np.ones_like(sizes)
    return np.maximum(1.0 + rho * 0.5 * (sizes - sizes.mean()) / std, MIN_SPEED)


def epoch_deadline(sizes: np.ndarray, speeds: np.ndarray, stragglers: float) -> float:
    """D = the (100 - s)th percentile of n_i / cp_i: a fraction `stragglers` of clients cannot do an epoch in D."""
    return float(np.percentile(np.asarray(sizes) / speeds, 100.0 * (1.0 - stragglers)))


def sample_clients(server_round: int, num_clients: int, per_round: int) -> list[int]:
    """The same clients for every method in a round: numpy's legacy generator seeded by the round number."""
    if per_round >= num_clients:
        return list(range(num_clients))
    return [int(i) for i in np.random.RandomState(server_round).choice(num_clients, per_round, replace=False)]


@dataclass(frozen=True)
class Plan:
    """What one client does in one round: `full_epochs` over its data, then `coreset_epochs` over a coreset of
    `coreset_size` samples, stopping when `sample_budget` samples are done; `dropped` clients do nothing and
    send nothing to aggregate. (The per-class ceil can make the coreset a few samples larger than k; the
    budget makes the last coreset epoch give them back, so a FedCore client ends by the deadline.)
    `coreset_at_global`: a FedCore client whose first full epoch does not fit picks its coreset at the received
    model instead; its size depends on the forward pass's measured cost, so `local_update` sets it
    (`global_coreset_size`)."""

    full_epochs: int = 0
    coreset_size: int = 0
    coreset_epochs: int = 0
    proximal: bool = False
    sample_budget: int | None = None  # samples that fit in the round deadline, floor(cp E D) (None: no limit)
    coreset_at_global: bool = False

    @property
    def dropped(self) -> bool:
        return self.full_epochs == 0 and self.coreset_epochs == 0


DROPPED = Plan()


def plan_round(method: str, n: int, speed: float, deadline: float, epochs: int) -> Plan:
    """The rule of `method` for a client of `n` samples and speed `speed` (samples per time unit) under epoch
    deadline `deadline` (time units). A client whose first epoch does not fit still works within E D: FedProx
    on floor(cp E D) samples of one epoch, FedCore on a coreset chosen at the received model."""
    if method == "fedavg":
        return Plan(full_epochs=epochs)
    if method == "fedavg-ds":
        return Plan(full_epochs=epochs) if deadline * speed >= n else DROPPED
    if method == "fedprox":
        return _fedprox(n, speed, deadline, epochs)
    if method == "fedcore":
        return _fedcore(n, speed, deadline, epochs)
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")


def _fedprox(n: int, speed: float, deadline: float, epochs: int) -> Plan:
    """The authors' whole epochs, int(cp D / n * E); where that is 0, the floor(cp E D) samples that fit."""
    done = epochs if deadline * speed >= n else int(deadline * speed / n * epochs)
    if done > 0:
        return Plan(full_epochs=done, proximal=True)
    budget = math.floor(speed * deadline * epochs)
    return Plan(full_epochs=1, proximal=True, sample_budget=budget) if budget > 0 else DROPPED


def _fedcore(n: int, speed: float, deadline: float, epochs: int) -> Plan:
    """Epoch 1 on all data, then E - 1 epochs on a coreset, within floor(cp E D) samples; a client whose first
    epoch does not fit (the authors' code drops it) takes E epochs on a coreset chosen at the received model."""
    budget = math.floor(speed * deadline * epochs)
    if budget < n:
        return Plan(coreset_epochs=epochs, sample_budget=budget, coreset_at_global=True) if budget > 0 else DROPPED
    if math.ceil(speed * deadline) >= n or epochs == 1:  # (up to one sample per epoch over: the budget cuts it)
        return Plan(full_epochs=epochs, sample_budget=budget)
    k = coreset_budget(n, speed, deadline, epochs)
    return Plan(full_epochs=1, coreset_size=k, coreset_epochs=epochs - 1 if k > 0 else 0, sample_budget=budget)


def coreset_budget(n: int, speed: float, deadline: float, epochs: int) -> int:
    """k = max(0, ceil((cp D E - n) / (E - 1))): one full epoch plus E - 1 coreset epochs fill cp E D samples."""
    return max(0, math.ceil((speed * deadline * epochs - n) / (epochs - 1)))


def global_coreset_size(budget: int, forward_samples: float, epochs: int) -> int:
    """k = ceil((budget - f) / E): E coreset epochs fill what the forward pass (f, in training samples) leaves
    of the round's `budget` samples; 0 (dropped) when it leaves less than one sample."""
    left = budget - forward_samples
    return math.ceil(left / epochs) if left >= 1 else 0
