"""Run every method of a RunConfig, one after the other, on the chosen backend; each yields a History."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

from fedcore.client_app import make_client_app
from fedcore.config import RunConfig
from fedcore.history import History
from fedcore.server_app import make_server_app

BACKENDS = ("inprocess", "flower-sim")


@contextmanager
def quiet_flower(level: int = logging.WARNING) -> Iterator[None]:
    """Flower logs every round at INFO; keep its warnings and errors only, for the run's duration."""
    logger = logging.getLogger("flwr")
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def run_methods(config: RunConfig, backend: str = "inprocess",
                on_round: Callable[[str, int], None] | None = None) -> dict[str, History]:
    """{method: History}; `on_round(method, round)` after every evaluated round (round 0 = initial model)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    histories = {}
    with quiet_flower():
        for method in config.methods:
            history = History(method, on_round=on_round)
            server_app, client_app = make_server_app(config, method, history), make_client_app(config)
            if backend == "inprocess":
                from fedcore.inprocess import run_inprocess

                run_inprocess(server_app, client_app, config.clients)
            else:
                from fedcore.flower_sim import run_flower_simulation

                run_flower_simulation(server_app, client_app, config.clients)
            if len(history.rounds) != config.rounds + 1:
                raise RuntimeError(f"{method}: {len(history.rounds) - 1} of {config.rounds} rounds recorded")
            histories[method] = history
    return histories
