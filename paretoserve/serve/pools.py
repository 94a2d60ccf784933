"""The router's replicas grouped by the model they serve: the pool a request's `model` names, and what /v1/models
says about each model.

One model (the router built over a list of replicas): one unnamed pool that takes every request whatever its
`model`, which the engine itself checks, as before the router served several. Several models (a mapping from the
name each is served under to its replicas): a request goes to the pool its `model` names; an absent `model`, or
`default` (the engine's alias of its one model), goes to the first; any other is a 404 naming the served models.
A request never leaves its pool, so a retry or a resumed stream stays on the same model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import aiohttp

from paretoserve.openai_api.protocol import ApiError
from paretoserve.serve.backends import Backend, Balancer, ReplicaView

DEFAULT = "default"  # the engine's alias of its model; here, of the first one

ReplicaGroups = Sequence[ReplicaView] | Mapping[str, Sequence[ReplicaView]]


def not_served(model: str, served: Sequence[str]) -> ApiError:
    """OpenAI's 404 for a model this router does not serve, naming those it does."""
    names = ", ".join(repr(name) for name in served) or "none"
    return ApiError(404, f"model '{model}' is not served here (served: {names})", param="model",
                    code="model_not_found")


class Pools:
    """The replicas by model: one Balancer per model, in the order the models were given."""

    def __init__(self, replicas: ReplicaGroups) -> None:
        if isinstance(replicas, Mapping):
            empty = [name for name, group in replicas.items() if not group]
            if not replicas or empty:
                raise ValueError(f"every served model needs a replica; none for {empty or 'any model'}")
            self.pools = [Balancer([Backend(r, name) for r in group], name) for name, group in replicas.items()]
        else:
            self.pools = [Balancer([Backend(r) for r in replicas])]
        self.by_name = {pool.model: pool for pool in self.pools if pool.model is not None}
        self.names = list(self.by_name)  # made once: every request is checked against them
        self.backends = [backend for pool in self.pools for backend in pool.backends]

    @property
    def named(self) -> bool:
        """Whether the router serves several models by name (a mapping), not one unnamed model."""
        return bool(self.by_name)

    def for_model(self, model: object) -> Balancer:
        """The pool that serves a request's `model` (checked to be a string or absent); a 404 for any other."""
        return self.by_name[model_for(model, self.names)] if self.named else self.pools[0]

    def healthy_count(self) -> int:
        return sum(pool.healthy_count() for pool in self.pools)

    async def listed(self, headers: Mapping[str, str]) -> list[dict]:
        """Every model's /v1/models entry, in order (named pools only)."""
        return list(await asyncio.gather(*(_entry(pool, headers) for pool in self.pools)))

    async def entry(self, model: str, headers: Mapping[str, str]) -> dict:
        """The /v1/models entry of the model `model` names (named pools only; a 404 naming the served models for
        one not served), asked of its own pool alone."""
        return await _entry(self.for_model(model), headers)


def model_entry(name: str, listed: object) -> dict:
    """The model's entry as a replica lists it in its /v1/models `data` (its context length among it); where the
    list is anything else, or names the model otherwise, the entry the router makes: the name is what routes. The
    router and the Ray ingress list their models by it."""
    own = {"id": name, "object": "model", "created": 0, "owned_by": "paretoserve"}
    if not isinstance(listed, list):
        return own
    return next((m for m in listed if isinstance(m, dict) and m.get("id") == name), own)


async def _entry(pool: Balancer, headers: Mapping[str, str]) -> dict:
    """The model's entry as a healthy replica of its pool lists it, else the router's (`model_entry`)."""
    name = pool.model
    assert name is not None  # only named pools are listed one by one
    backend = pool.pick()
    return model_entry(name, None if backend is None else await _replica_list(backend, headers))


async def _replica_list(backend: Backend, headers: Mapping[str, str]) -> object:
    """A replica's /v1/models `data`; None where it fails or answers anything else."""
    try:
        async with backend.client.get("/v1/models", headers=headers) as response:
            return json.loads(await response.read())["data"] if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError):
        return None


def model_for(requested: object, served: list[str]) -> str:
    """The served model a request's `model` names: the first for none or `default`, else that one (a 404 naming the
    served models for any other); the router and the Ray ingress route by it."""
    if requested is None or requested == DEFAULT:
        return served[0]
    if requested not in served:
        raise not_served(str(requested), served)
    return str(requested)
