"""Flower's FedAvg, changed where FedCore's experiments need it.

- Sampling: the same K partitions for every method in a round (numpy seeded by the round), not
  `random.sample` over node ids; each gets the round config plus its own speed.
- Aggregation: replies marked `dropped` are left out, the rest are averaged by FedAvg weighted by their
  full n_i (num-examples), coreset clients included; a round with no survivor keeps the global model.
- Bookkeeping: every reply's metrics and the round's simulated time go to a `History`."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedcore.history import ClientRound, History
from fedcore.records import number
from fedcore.schedule import sample_clients


class FedCoreStrategy(FedAvg):
    def __init__(self, history: History, method: str, nodes: dict[int, int], speeds: dict[int, float],
                 per_round: int) -> None:
        """`nodes` maps partition id -> node id, `speeds` partition id -> cp_i."""
        n = len(nodes)
        super().__init__(fraction_train=per_round / n, fraction_evaluate=1.0, min_train_nodes=per_round,
                         min_evaluate_nodes=n, min_available_nodes=n)
        self.history, self.method, self.nodes, self.speeds, self.per_round = history, method, nodes, speeds, per_round

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        messages = []
        for partition in sample_clients(server_round, len(self.nodes), self.per_round):
            own = ConfigRecord({**config, "server-round": server_round, "method": self.method,
                                "speed": self.speeds[partition]})
            content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: own})
            messages.append(Message(content, dst_node_id=self.nodes[partition], message_type=MessageType.TRAIN,
                                    group_id=str(server_round)))
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        failed = [r for r in replies if r.has_error()]
        if failed:
            raise RuntimeError(f"round {server_round}: node {failed[0].metadata.src_node_id} failed: "
                               f"{failed[0].error.reason}")
        clients = [_client_round(r.content.metric_records["metrics"]) for r in replies]
        self.history.add_round(server_round, sorted(clients, key=lambda c: c.partition))
        kept = [r for r in replies if not number(r.content.metric_records["metrics"], "dropped")]
        if not kept:
            return None, None
        return super().aggregate_train(server_round, kept)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        metrics = super().aggregate_evaluate(server_round, replies)
        if metrics is None:
            raise RuntimeError(f"round {server_round}: no evaluation reply")
        self.history.set_evaluation(server_round, number(metrics, "accuracy"), number(metrics, "loss"))
        return metrics


def _client_round(m: MetricRecord) -> ClientRound:
    return ClientRound(partition=int(number(m, "partition-id")), n=int(number(m, "num-examples")),
                       speed=number(m, "speed"), dropped=bool(number(m, "dropped")), samples=int(number(m, "samples")),
                       sim_time=number(m, "sim-time"), coreset_size=int(number(m, "coreset-size")),
                       selection_cpu_s=number(m, "selection-cpu-s"), train_cpu_s=number(m, "train-cpu-s"))
