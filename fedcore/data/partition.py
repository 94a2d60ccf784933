"""FedProx's non-IID split of a labelled pool: two labels per client, power-law sizes."""

from __future__ import annotations

import numpy as np

from fedcore.data.base import FederatedData, split_client

LABELS_PER_CLIENT = 2
MIN_PER_LABEL = 3  # every client holds a few samples of each of its labels, as FedProx's MNIST split does
SIZE_SIGMA = 2.0  # lognormal(0, 2) shares: a few large clients, many small ones (power law)


def label_partition(x: np.ndarray, y: np.ndarray, num_clients: int, num_classes: int, test_fraction: float,
                    seed: int) -> FederatedData:
    """Client i holds labels i, i+1 (mod classes); each label's pool is shared among its holders in
    proportions drawn from lognormal(0, 2), after MIN_PER_LABEL each; then each client keeps a held-out split."""
    rng = np.random.RandomState(seed)
    holders: dict[int, list[int]] = {c: [] for c in range(num_classes)}
    for i in range(num_clients):
        for j in range(LABELS_PER_CLIENT):
            holders[(i + j) % num_classes].append(i)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for label, owners in holders.items():
        pool = rng.permutation(np.flatnonzero(y == label))
        if not owners:
            continue
        if len(pool) < MIN_PER_LABEL * len(owners):
            raise ValueError(f"label {label} has {len(pool)} samples, too few for {len(owners)} clients")
        shares = rng.lognormal(0, SIZE_SIGMA, len(owners))
        extra = _apportion(len(pool) - MIN_PER_LABEL * len(owners), shares)
        bounds = np.concatenate([[0], np.cumsum(extra + MIN_PER_LABEL)])
        for owner, lo, hi in zip(owners, bounds[:-1], bounds[1:], strict=True):
            parts[owner].append(pool[lo:hi])
    split_rng = np.random.RandomState(seed + 1)
    clients = []
    for indices in parts:
        idx = np.concatenate(indices)
        clients.append(split_client(x[idx], y[idx], test_fraction, split_rng))
    return FederatedData(tuple(clients), x.shape[1], num_classes)


def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers proportional to `shares` that sum to `total` (largest remainder)."""
    exact = total * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(exact - counts)[::-1][: total - counts.sum()]] += 1
    return counts
