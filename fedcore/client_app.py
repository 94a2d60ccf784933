"""The Flower ClientApp: each node is one partition of the data set and answers three kinds of message.

- query: its partition id and training size (the server needs every n_i for the speeds and the deadline);
- train: the round's config (server-round, epoch-deadline, epochs, method, speed) -> the method's plan ->
  arrays (unless dropped) and the metrics num-examples, sim-time, coreset-size, dropped (and a few more);
- evaluate: loss and accuracy of the global model on its held-out split, weighted by num-examples."""

from __future__ import annotations

from functools import cache

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from threadpoolctl import ThreadpoolController

from fedcore import data as datasets
from fedcore.config import RunConfig
from fedcore.local import local_update
from fedcore.records import from_record, number, to_record
from fedcore.schedule import plan_round


@cache
def _threadpools() -> ThreadpoolController:
    """Found once per process: looking the BLAS libraries up costs milliseconds, more than a small client's work."""
    return ThreadpoolController()


def one_blas_thread():
    """Batch-8 SGD and small evaluations: BLAS threads only add overhead (2-3x slower with two threads here)."""
    return _threadpools().limit(limits=1, user_api="blas")


def make_client_app(config: RunConfig) -> ClientApp:
    app = ClientApp()

    def client_data(context: Context):
        federation = datasets.load(config.dataset, config.clients, config.seed)
        partition = int(context.node_config["partition-id"])
        return federation, partition, federation.clients[partition]

    @app.query()
    def query(message: Message, context: Context) -> Message:
        _, partition, local = client_data(context)
        metrics = MetricRecord({"partition-id": partition, "num-examples": local.n})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        federation, partition, local = client_data(context)
        cfg = message.content.config_records["config"]
        server_round, method, speed = int(number(cfg, "server-round")), str(cfg["method"]), number(cfg, "speed")
        plan = plan_round(method, local.n, speed, number(cfg, "epoch-deadline"), int(number(cfg, "epochs")))
        rng = np.random.RandomState([config.seed, server_round, partition])
        with one_blas_thread():
            params = from_record(message.content.array_records["arrays"])
            result = local_update(config.build_model(federation), params, local, plan, speed,
                                  config.sgd(plan.proximal), rng, charge_selection=config.charge_selection,
                                  max_class=config.max_class)
        metrics = MetricRecord({
            "num-examples": local.n, "partition-id": partition, "speed": speed, "dropped": int(result.dropped),
            "samples": result.samples, "sim-time": result.sim_time, "coreset-size": result.coreset_size,
            "selection-cpu-s": result.selection_cpu_s, "train-cpu-s": result.train_cpu_s,
        })
        content = RecordDict({"metrics": metrics})
        if result.params is not None:  # None: the client dropped out
            content["arrays"] = to_record(result.params)
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        federation, _, local = client_data(context)
        loss, accuracy = 0.0, 0.0
        if len(local.y_test):  # a client without held-out samples weighs 0 in the average
            with one_blas_thread():
                loss, accuracy = config.build_model(federation).evaluate(
                    from_record(message.content.array_records["arrays"]), local.x_test, local.y_test)
        metrics = MetricRecord({"num-examples": len(local.y_test), "loss": loss, "accuracy": accuracy})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    return app
