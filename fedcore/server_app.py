"""The Flower ServerApp of one method's run: ask every node its size, set speeds and the deadline, then let
the strategy run the rounds (with the initial model evaluated first, so time 0 has an accuracy)."""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedcore import data as datasets
from fedcore.config import RunConfig
from fedcore.history import History
from fedcore.records import number, to_record
from fedcore.schedule import compute_power, epoch_deadline
from fedcore.strategy import FedCoreStrategy

CONNECT_TIMEOUT_S = 120.0  # Flower's simulation registers its nodes while the ServerApp already runs
ROUND_TIMEOUT_S = 3600.0


def make_server_app(config: RunConfig, method: str, history: History) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes, sizes = query_nodes(grid, config.clients)
        speeds = compute_power(sizes)
        history.epoch_deadline = epoch_deadline(sizes, speeds, config.stragglers)
        history.epochs, history.sizes, history.speeds = config.epochs, sizes.tolist(), speeds.tolist()
        strategy = FedCoreStrategy(history, method, nodes, dict(enumerate(speeds.tolist())), config.per_round)
        federation = datasets.load(config.dataset, config.clients, config.seed)
        initial = to_record(config.build_model(federation).init(config.seed))
        replies = grid.send_and_receive(strategy.configure_evaluate(0, initial, ConfigRecord(), grid),
                                        timeout=ROUND_TIMEOUT_S)
        strategy.aggregate_evaluate(0, replies)
        train_config = ConfigRecord({"epoch-deadline": history.epoch_deadline, "epochs": config.epochs})
        strategy.start(grid, initial, num_rounds=config.rounds, timeout=ROUND_TIMEOUT_S, train_config=train_config)

    return app


def query_nodes(grid: Grid, expected: int) -> tuple[dict[int, int], np.ndarray]:
    """(partition id -> node id, training sizes by partition) from a query message to every node."""
    waited_until = time.monotonic() + CONNECT_TIMEOUT_S
    while len(node_ids := list(grid.get_node_ids())) < expected:
        if time.monotonic() > waited_until:
            raise RuntimeError(f"only {len(node_ids)} of {expected} nodes connected in {CONNECT_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    messages = [Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY) for node in node_ids]
    replies = list(grid.send_and_receive(messages, timeout=ROUND_TIMEOUT_S))
    if len(replies) != len(node_ids) or any(r.has_error() for r in replies):
        raise RuntimeError("a node did not answer the size query")
    nodes, sizes = {}, {}
    for reply in replies:
        metrics = reply.content.metric_records["metrics"]
        partition = int(number(metrics, "partition-id"))
        nodes[partition], sizes[partition] = reply.metadata.src_node_id, int(number(metrics, "num-examples"))
    if sorted(nodes) != list(range(expected)):
        raise RuntimeError(f"expected partitions 0..{expected - 1}, got {sorted(nodes)}")
    return nodes, np.array([sizes[p] for p in range(expected)])
