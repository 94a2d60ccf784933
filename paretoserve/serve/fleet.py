"""Several models' replicas on this machine: one supervisor per model, each on cores of its own.

Replicas are numbered across all models, in the order the models were given (model 0's replicas first), so each
has one `replica` label, one /health entry and one replica-N.log however many models there are.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from paretoserve.engine_process import LaunchError
from paretoserve.hf_export import exported_name
from paretoserve.model import GGUF_ENGINES, names_gguf, resolve_model
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.lifecycle import StartStop
from paretoserve.serve.pinning import threads_for, usable_cores
from paretoserve.serve.supervisor import Replica, Supervisor


@dataclass(frozen=True)
class ServedModel:
    """One model of a multi-model `serve`: the name requests ask for in `model`, and its replicas' plan."""

    name: str  # what its engine lists in /v1/models and answers to
    plan: ServeConfig


def served_name(plan: ServeConfig) -> str:
    """The name the plan's engine serves its model under: a llama.cpp engine's is its GGUF's (`default`: the bundled
    model's, else the file's stem), as `paretoserve engine` names it; vLLM's and SGLang's is the model directory as
    given (a GGUF's export: the GGUF's name, which the vllm preset passes as --served-model-name)."""
    if plan.engine_cmd is not None:
        raise PlanError("several models run on the engine presets, whose served names paretoserve knows; "
                        "--engine-cmd serves one model")
    if plan.engine in GGUF_ENGINES or names_gguf(plan.model):  # vLLM serves a GGUF's export under its name
        return resolve_model(plan.model).name
    return exported_name(plan.model) or plan.model


def served_models(plans: list[ServeConfig]) -> list[ServedModel]:
    """Each plan under its served name; two plans of one model are refused (a request could not tell them apart)."""
    models = [ServedModel(served_name(plan), plan) for plan in plans]
    names = [m.name for m in models]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PlanError(f"--model: {', '.join(twice)} given twice; give each model once, with its --replicas")
    if any(m.plan.mps for m in models):
        raise PlanError("--mps runs one model's replicas; it does not apply to several models yet")
    return models


def place(plans: list[ServeConfig], cores: list[int]) -> list[tuple[ServeConfig, list[int] | None]]:
    """Each plan with its threads per replica settled, and the cores its replicas are pinned to (None: not pinned).

    Threads 0 shares the usable cores evenly among every replica of every model. Pinned models take consecutive
    cores in model order, none shared; a placement that needs more cores than there are is refused with the sum.
    """
    replicas = sum(plan.replicas for plan in plans)
    settled = [dataclasses.replace(p, threads_per_replica=threads_for(replicas, p.threads_per_replica, cores))
               for p in plans]
    pinned = [p for p in settled if p.pin]
    need = sum(p.replicas * p.threads_per_replica for p in pinned)
    if need > len(cores):
        terms = " + ".join(f"{p.replicas} x {p.threads_per_replica}" for p in pinned)
        raise PlanError(f"the models need {need} cores ({terms} replicas x threads) but this process may use "
                        f"{len(cores)}; lower --replicas or --threads-per-replica, or pass --no-pin to share cores")
    placed: list[tuple[ServeConfig, list[int] | None]] = []
    start = 0
    for plan in settled:
        if not plan.pin:
            placed.append((plan, None))
            continue
        end = start + plan.replicas * plan.threads_per_replica
        placed.append((plan, cores[start:end]))
        start = end
    return placed


class Fleet(StartStop):
    """Every model's replicas: one Supervisor per model, started and stopped together; a sync context manager."""

    def __init__(self, models: list[ServedModel], log_dir: Path | None = None) -> None:
        self.models = models
        self.log_dir = log_dir
        self.supervisors: list[Supervisor] = []

    def start(self) -> "Fleet":
        """Place the models on this machine's cores and start every replica (not waiting)."""
        index = 0
        for plan, cores in place([m.plan for m in self.models], usable_cores()):
            self.supervisors.append(Supervisor(plan, self.log_dir, cores, first_index=index))
            index += plan.replicas
        for supervisor in self.supervisors:
            supervisor.start()
        return self

    @property
    def replicas(self) -> dict[str, list[Replica]]:
        """Each model's replicas, by served name, in model order."""
        return {m.name: s.replicas for m, s in zip(self.models, self.supervisors, strict=True)}

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(pid for s in self.supervisors for pid in s.pids)

    def wait_healthy(self, timeout_s: float) -> None:
        """Block until every replica of every model is healthy; LaunchError naming the model otherwise."""
        deadline = time.monotonic() + timeout_s
        for model, supervisor in zip(self.models, self.supervisors, strict=True):
            try:
                supervisor.wait_healthy(max(0.0, deadline - time.monotonic()))
            except LaunchError as exc:
                raise LaunchError(f"model {model.name}: {exc}") from exc

    def stop(self) -> None:
        """Stop every model's replicas."""
        for supervisor in self.supervisors:
            supervisor.stop()
