"""What the Ray Serve builder (serve/ray_replica.py `build`) takes: the `args` of ray-serve.yaml, read and checked
here without importing Ray.

- One model: the replica plan's fields at the top of `args` (`RayPlan`), one deployment behind Ray's proxy.
- Several models: `{"models": [PLAN, PLAN, ...]}` (`RayModels`), one deployment per model in that order behind an
  ingress that routes each request by its `model` (an absent one, or `default`, to the first); the clients' keys,
  which the ingress checks, sit beside `models`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from paretoserve.engine.config import EngineConfig
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.config import PlanError, ServeConfig

KEY_FIELDS = ("api_key_digests", "keyed_metrics")  # with several models: the ingress's, given once beside `models`


@dataclass(frozen=True)
class RayPlan:
    """What `build` takes (the `args` of ray-serve.yaml): the replica plan's fields and Ray's own knobs."""

    replicas: int = 1
    max_batch: int = ServeConfig.max_batch
    threads_per_replica: int = 1  # Ray's num_cpus of each replica, and the engine's threads
    kv_tokens: int | None = None
    ctx_per_seq: int | None = None
    model: str = "default"  # resolved on each node: the bundled model is assembled there
    engine: str = "embedded"
    repack: str = "auto"
    pin: bool = True
    mem_fraction: float = ServeConfig.mem_fraction  # device memory all replicas share (GPU engines)
    num_gpus: float = 0.0  # each replica's share of a GPU: 1 / replicas on a GPU node, 0 on CPUs
    max_queued_requests: int = EngineConfig.max_queue  # per proxy, beyond max_ongoing_requests x replicas
    health_timeout_s: float = ServeConfig.health_timeout_s
    # The clients' keys as SHA-256 hex digests: the deployment checks them, and Ray's config never holds a key.
    api_key_digests: tuple[str, ...] = ()
    keyed_metrics: bool = False
    # Cores (of each node's usable cores) before this deployment's first replica: with several models the builder
    # sets it, so each model's replicas pin past the models before it instead of on the same cores.
    core_offset: int = 0

    @property
    def api_keys(self) -> ApiKeys:
        return ApiKeys.from_hex(self.api_key_digests, self.keyed_metrics)

    @classmethod
    def from_args(cls, args: dict[str, Any], where: str = "ray-serve.yaml args") -> RayPlan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise PlanError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "api_key_digests" in args:
            args = {**args, "api_key_digests": tuple(args["api_key_digests"])}  # a list once through YAML
        return cls(**args)

    def replica_plan(self) -> ServeConfig:
        """The same plan as `serve` checks it (PlanError names the field)."""
        return ServeConfig(replicas=self.replicas, max_batch=self.max_batch, kv_tokens=self.kv_tokens,
                           ctx_per_seq=self.ctx_per_seq, threads_per_replica=self.threads_per_replica,
                           model=self.model, engine=self.engine, repack=self.repack, pin=self.pin,
                           mem_fraction=self.mem_fraction, health_timeout_s=self.health_timeout_s)

    def args(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as ray-serve.yaml's args."""
        default = RayPlan()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @property
    def cores(self) -> int:
        """Cores its replicas pin to on one node when they all land there: replicas x threads."""
        return self.replicas * self.threads_per_replica


@dataclass(frozen=True)
class RayModels:
    """Several models' plans (`build`'s args with `models`), in order, and the clients' keys the ingress checks."""

    plans: tuple[RayPlan, ...]
    api_key_digests: tuple[str, ...] = ()
    keyed_metrics: bool = False

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> RayModels:
        """The models of `args`; PlanError names the model (by its place in `models`) and the field."""
        unknown = sorted(set(args) - {"models", *KEY_FIELDS})
        if unknown:
            raise PlanError(f"ray-serve.yaml args: unknown field(s) {', '.join(unknown)} beside models; known: "
                            f"models, {', '.join(KEY_FIELDS)}")
        entries = args["models"]
        if not isinstance(entries, list | tuple) or not entries or not all(isinstance(e, dict) for e in entries):
            raise PlanError("ray-serve.yaml args: models must be a non-empty list of plans (one mapping per model)")
        plans = []
        for i, entry in enumerate(entries):
            keyed = sorted(set(entry) & set(KEY_FIELDS))
            if keyed:
                raise PlanError(f"ray-serve.yaml args: models[{i}]: {', '.join(keyed)} belong beside models (the "
                                "ingress checks every client's key)")
            plans.append(RayPlan.from_args(entry, f"ray-serve.yaml args: models[{i}]"))
        return cls(tuple(plans), tuple(args.get("api_key_digests", ())), bool(args.get("keyed_metrics", False)))

    def placed(self) -> tuple[RayPlan, ...]:
        """Each plan with its core offset: the cores of the models before it, so no two models pin the same cores
        while they fit on a node (they wrap round it past that, as one model's replicas do)."""
        offsets = [sum(plan.cores for plan in self.plans[:i]) for i in range(len(self.plans))]
        return tuple(replace(plan, core_offset=offset) for plan, offset in zip(self.plans, offsets, strict=True))

    def args(self) -> dict[str, Any]:
        """ray-serve.yaml's args: each model's differing fields, and the keys where there are any."""
        keys = {"api_key_digests": list(self.api_key_digests), "keyed_metrics": self.keyed_metrics} \
            if self.api_key_digests else {}
        return {"models": [plan.args() for plan in self.plans], **keys}


def read_args(args: dict[str, Any]) -> RayPlan | RayModels:
    """`build`'s args as one model's plan, or several models' when they hold `models`."""
    return RayModels.from_args(dict(args)) if "models" in args else RayPlan.from_args(dict(args))
