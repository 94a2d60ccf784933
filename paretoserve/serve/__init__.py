"""Replicas on one machine behind a load-balancing OpenAI-compatible router (`paretoserve serve`).

For code that measures replicas: `ReplicaServer(ServeConfig(...))` runs `serve` as a child process
(one base URL, every pid); `Supervisor(ServeConfig(...))` runs the replicas alone, in this process.
"""

from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.replica_server import ReplicaServer, serve_argv
from paretoserve.serve.supervisor import Supervisor

__all__ = ["PlanError", "ReplicaServer", "RouterConfig", "ServeConfig", "Supervisor", "serve_argv"]
