"""Replicas on one machine behind a load-balancing OpenAI-compatible router (`paretoserve serve`).

For code that measures replicas: `ReplicaServer(ReplicaPlan(...))` runs `serve` as a child process
(one base URL, every pid); `Supervisor(ReplicaPlan(...))` runs the replicas alone, in this process.
"""

from paretoserve.serve.config import PlanError, ReplicaPlan, RouterConfig, load_plan_file
from paretoserve.serve.replica_server import ReplicaServer, serve_argv
from paretoserve.serve.supervisor import Supervisor

__all__ = ["PlanError", "ReplicaPlan", "ReplicaServer", "RouterConfig", "Supervisor", "load_plan_file", "serve_argv"]
