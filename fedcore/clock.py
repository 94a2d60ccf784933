"""A client's clock in training samples: CPU work that is not training (the proxies' forward pass, the coreset
selection) is converted to training samples at the rate this client's own training runs, so a slow device
also selects slowly. The simulated time is then samples / speed."""

from __future__ import annotations

import time

import numpy as np

from fedcore.data import ClientData
from fedcore.models import Model, Params
from fedcore.training import SGD, train_epochs

PROBE_SAMPLES = 512  # training samples timed for the rate when no full epoch ran (~1-2 ms of CPU)


def as_samples(cpu_s: float, train_cpu_s: float, trained: int) -> float:
    """CPU seconds of other work, in training samples at `trained` samples per `train_cpu_s` CPU seconds."""
    return cpu_s * trained / train_cpu_s if train_cpu_s > 0 else 0.0


def probe_rate(model: Model, params: Params, data: ClientData, sgd: SGD) -> tuple[float, int]:
    """(CPU seconds, samples) of one SGD pass over up to PROBE_SAMPLES of the client's samples, as a rate for a
    client that ran no full epoch; the probe's result is thrown away (its own random stream: the client's is
    left as it was)."""
    m = min(data.n, PROBE_SAMPLES)
    started = time.process_time()
    _, samples = train_epochs(model, params, data.x[:m], data.y[:m], 1, sgd, np.random.RandomState(0))
    return time.process_time() - started, samples
