"""Flower's own Simulation Engine (`run_simulation`, Ray backend): the same apps, with every ClientApp call in
a Ray actor. The ServerApp runs in a thread of this process, so the History it fills is read back directly."""

from __future__ import annotations

import os
import warnings
from typing import Any

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

# One actor per core: the clients are single-threaded.
CLIENT_RESOURCES: dict[str, Any] = {"num_cpus": 1, "num_gpus": 0.0}


def run_flower_simulation(server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
    """Run `server_app` against `num_nodes` simulated SuperNodes (partition ids 0..num_nodes-1)."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # Ray's FutureWarning about num_gpus=0
    try:
        import ray  # noqa: F401  (flwr[simulation] brings it; fail here with a clear message when missing)
        from flwr.simulation import run_simulation
    except ImportError as exc:
        raise RuntimeError("--backend flower-sim needs Flower's simulation extra: "
                           "pip install 'flwr[simulation]'") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # run_simulation points to `flwr run`
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_nodes,
                       backend_config={"client_resources": CLIENT_RESOURCES,
                                       "init_args": {"logging_level": "ERROR", "log_to_driver": False}})
