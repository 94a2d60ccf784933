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
    budget makes the last coreset epoch give them back, so a FedCore client ends by the deadline.)"""

    full_epochs: int = 0
    coreset_size: int = 0
    coreset_epochs: int = 0
    proximal: bool = False
    sample_budget: int | None = None  # FedCore: samples that fit in the round deadline, floor(cp E D)

    @property
    def dropped(self) -> bool:
        return self.full_epochs == 0


DROPPED = Plan()


def plan_round(method: str, n: int, speed: float, deadline: float, epochs: int) -> Plan:
    """The rule of `method` for a client of `n` samples and speed `speed` under epoch deadline `deadline`."""
    fits_one_epoch = deadline * speed >= n
    if method == "fedavg":
        return Plan(full_epochs=epochs)
    if method == "fedavg-ds":
        return Plan(full_epochs=epochs) if fits_one_epoch else DROPPED
    if method == "fedprox":
        done = epochs if fits_one_epoch else int(deadline * speed / n * epochs)
        return Plan(full_epochs=done, proximal=True) if done > 0 else DROPPED
    if method == "fedcore":
        if epochs * deadline * speed < n:
            return DROPPED  # cannot finish even the first full epoch by the round's deadline
        budget = math.floor(speed * deadline * epochs)
        if math.ceil(speed * deadline) >= n or epochs == 1:  # (up to one sample per epoch over: the budget cuts it)
            return Plan(full_epochs=epochs, sample_budget=budget)
        k = coreset_budget(n, speed, deadline, epochs)
        return Plan(full_epochs=1, coreset_size=k, coreset_epochs=epochs - 1 if k > 0 else 0, sample_budget=budget)
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")


def coreset_budget(n: int, speed: float, deadline: float, epochs: int) -> int:
    """k = max(0, ceil((cp D E - n) / (E - 1))): one full epoch plus E - 1 coreset epochs fill cp E D samples."""
    return max(0, math.ceil((speed * deadline * epochs - n) / (epochs - 1)))
