"""FedProx's Synthetic(alpha, beta) generator (Li et al., 2020), as FedCore's authors ran it.

Same draws in the same order as the reference script with `np.random.seed(seed)`, so seed 0 gives the
data set the paper used; the 90/10 split is ours (seeded), the reference shuffled unseeded."""

from __future__ import annotations

import numpy as np

from fedcore.data.base import FederatedData, split_client

NUM_FEATURES = 60
NUM_CLASSES = 10
TEST_FRACTION = 0.1


def synthetic(alpha: float, beta: float, num_clients: int = 30, seed: int = 0) -> FederatedData:
    """Client k: sizes lognormal(4, 2) + 50; u_k ~ N(0, alpha), W, b ~ N(u_k, 1); B_k ~ N(0, beta),
    v_k ~ N(B_k, 1), x ~ N(v_k, diag(j^-1.2)); label = argmax(softmax(W x + b)) = argmax(W x + b)."""
    rng = np.random.RandomState(seed)
    sizes = rng.lognormal(4, 2, num_clients).astype(int) + 50
    mean_w = rng.normal(0, alpha, num_clients)
    mean_b = mean_w
    shift = rng.normal(0, beta, num_clients)
    cov = np.diag(np.power(np.arange(1, NUM_FEATURES + 1), -1.2))
    mean_x = np.stack([rng.normal(shift[k], 1, NUM_FEATURES) for k in range(num_clients)])
    split_rng = np.random.RandomState(seed + 1)
    clients = []
    for k in range(num_clients):
        w = rng.normal(mean_w[k], 1, (NUM_FEATURES, NUM_CLASSES))
        b = rng.normal(mean_b[k], 1, NUM_CLASSES)
        x = rng.multivariate_normal(mean_x[k], cov, sizes[k])
        y = np.argmax(x @ w + b, axis=1)  # softmax is monotone: the argmax of the logits
        clients.append(split_client(x, y, TEST_FRACTION, split_rng))
    return FederatedData(tuple(clients), NUM_FEATURES, NUM_CLASSES)
