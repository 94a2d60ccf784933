"""A Flower Grid that delivers each message by calling the ClientApp in this process: no Ray, no SuperLink.

Messages go through Flower's own types and the ClientApp's own dispatch (`app(message, context)`), one node
after the other, so a run is deterministic and needs no more than one core."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

FIRST_NODE_ID = 1001  # any ids distinct from the server's


class InProcessGrid(Grid):
    def __init__(self, client_app: ClientApp, num_nodes: int, run_id: int = 1) -> None:
        self._client_app = client_app
        self._run = Run.create_empty(run_id=run_id)
        self._contexts = {
            FIRST_NODE_ID + p: Context(run_id=run_id, node_id=FIRST_NODE_ID + p, state=RecordDict(),
                                       node_config={"partition-id": p, "num-partitions": num_nodes}, run_config={})
            for p in range(num_nodes)
        }
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            context = self._contexts.get(message.metadata.dst_node_id)
            if context is None:
                raise ValueError(f"no node {message.metadata.dst_node_id}")
            message.metadata.__dict__["_message_id"] = message_id = uuid.uuid4().hex  # as Flower's grids do
            self._replies[message_id] = self._client_app(message, context)
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_inprocess(server_app: ServerApp, client_app: ClientApp, num_nodes: int, run_id: int = 1) -> None:
    """Run `server_app` to the end against `num_nodes` in-process nodes (partition ids 0..num_nodes-1)."""
    grid = InProcessGrid(client_app, num_nodes, run_id)
    context = Context(run_id=run_id, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(), run_config={})
    # Instruction messages take their run and sender from the process's task identity, which Flower's own
    # runtimes set before starting a ServerApp; set it the same way, and put back what was there.
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SUPERLINK_NODE_ID
    try:
        server_app(grid, context)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
