"""Every Ray replica's engine metrics in one /metrics answer, although Ray's proxy sends /metrics to one replica.

Each replica puts its engine's metrics on a small named actor (`MetricsBoard`) every PUSH_S seconds; /metrics
(a replica's, with one model; the ingress's, with several) reads the board and labels each replica's samples with
its replica (and model), as our router's /metrics does: `paretoserve bench` and the sweep then sum them like one
engine.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import ray

from paretoserve.serve.metrics import merged_metrics

APP_NAME = "paretoserve"  # the Serve application; the board is named after it
PUSH_S = 0.5  # how often each replica puts its metrics on the board
STALE_S = 5.0  # a replica that put nothing for this long (killed, replaced) is left out of /metrics
BOARD_TIMEOUT_S = 5.0  # one put; a board this slow is looked up again next time


@ray.remote(num_cpus=0)
class MetricsBoard:
    """Each replica's latest metrics text and labels. Owned by the replica that created it (no cleanup needed: it
    goes with that replica, and the next put of any other creates it again)."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[float, dict[str, str], str]] = {}

    def put(self, labels: dict[str, str], text: str) -> None:
        self.texts[labels["replica"]] = (time.monotonic(), labels, text)

    def fresh(self) -> list[tuple[dict[str, str], str]]:
        now = time.monotonic()
        return [(labels, text) for at, labels, text in self.texts.values() if now - at < STALE_S]


def metrics_board():
    """The application's board, created by whoever asks first."""
    return MetricsBoard.options(
        name=f"{APP_NAME}-metrics", namespace="serve", get_if_exists=True).remote()


async def board_texts() -> list[tuple[dict[str, str], str]]:
    """Every fresh replica's labels and metrics text; none where the board cannot be reached (yet)."""
    try:
        return await metrics_board().fresh.remote()
    except Exception:  # noqa: BLE001 - no board yet, or it went with its replica: the next put makes it again
        return []


class MetricsPusher:
    """A thread that puts this replica's metrics on the board every PUSH_S; `own` is what it would put now."""

    def __init__(self, labels: dict[str, str], text: Callable[[], str]) -> None:
        self.labels, self.text = labels, text
        self.stop = threading.Event()
        self.board: Any = None  # the board's actor handle, once found
        threading.Thread(target=self._push, name="paretoserve-metrics", daemon=True).start()

    def _push(self) -> None:
        while not self.stop.wait(PUSH_S):
            try:
                self.board = self.board or metrics_board()
                ray.get(self.board.put.remote(self.labels, self.text()), timeout=BOARD_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the board went with its replica, or the engine is busy: next time
                self.board = None

    async def every_replica(self) -> bytes:
        """The board's metrics with this replica's own as they are now (it answers even before the board exists)."""
        texts = [(labels, text) for labels, text in await board_texts() if labels["replica"] != self.labels["replica"]]
        return merged_metrics([*texts, (self.labels, self.text())])
