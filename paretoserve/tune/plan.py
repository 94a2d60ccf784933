"""Which replica configuration `tune` measures next to the best single engine."""

from __future__ import annotations

import math

from paretoserve.advise import Advice
from paretoserve.engine.config import available_cores
from paretoserve.results.setup import ReplicaSetup


def replica_point(advice: Advice, cores: int | None, max_replicas: int) -> ReplicaSetup | None:
    """The advised replica plan when it has several replicas; else the alternative a user would try next:
    the `cores` the sweep ran on (None: this machine's) split among N replicas (as many as fit memory, cores and
    `max_replicas`) sharing the same total batch as B_opt's cap. None when only one replica fits."""
    plan = advice.replica_plan
    if plan.replicas > 1:
        return plan.setup()
    cores = cores or available_cores()
    limits = [n for n in (cores, plan.replicas_fit_memory, max_replicas) if n is not None]
    replicas = min(limits)
    if replicas < 2:
        return None
    cap = math.ceil(advice.b_opt_max_batch / replicas)
    return ReplicaSetup(cap, None, cores // replicas, replicas)
