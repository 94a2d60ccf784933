"""Replicas on one machine behind a load-balancing OpenAI-compatible router (`paretoserve serve`), of one model or
of several (the router routes each request by its `model`).

For code that measures replicas: `ReplicaServer(ServeConfig(...))` runs `serve` as a child process
(one base URL, every pid), `ReplicaServer([ServeConfig(model=A, ...), ServeConfig(model=B, ...)])` every model behind
one router; `Supervisor(ServeConfig(...))` runs the replicas alone, in this process, and `Fleet([ServedModel(name,
ServeConfig(...)), ...])` several models' replicas, each on cores of their own.
"""

from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.fleet import Fleet, ServedModel
from paretoserve.serve.replica_server import ReplicaServer, serve_argv
from paretoserve.serve.supervisor import Supervisor

__all__ = ["Fleet", "PlanError", "ReplicaServer", "RouterConfig", "ServeConfig", "ServedModel", "Supervisor",
           "serve_argv"]
