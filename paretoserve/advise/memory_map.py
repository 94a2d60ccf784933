"""The device's memory shared by several models: each model's weights and KV per replica, and what stays free.

A placement of several models on one device (`tune --model A --model B`) fits when the sum over the models of
replicas x (weights + the KV its batch cap needs) stays within the device's memory. On a GPU every engine also
gets its share of the device (`mem_fraction`: vLLM's --gpu-memory-utilization, SGLang's --mem-fraction-static):
its need over the device's memory, plus an equal part of what the shares leave below `MEMORY_CEILING` for
activations and runtime buffers, so the shares never sum past it and a second engine is never refused at start
for memory the first one reserved (vLLM issues 19804 and 2193).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from paretoserve.limits import UserError

MEMORY_CEILING = 0.9  # the share of the device all engines' memory shares may add up to (vLLM's own default)


class MemoryMapError(UserError):
    """A placement that does not fit the device's memory; the message names the flag."""


@dataclass(frozen=True)
class ModelMemory:
    """One model's part of the device, in bytes."""

    model: str
    replicas: int
    max_batch: int
    kv_tokens: int  # each replica's KV cache, tokens: the cap's sequences at their whole context
    weights_bytes: float  # per replica (each replica loads its own copy)
    kv_bytes: float  # per replica: the KV its batch cap needs
    mem_fraction: float | None = None  # of the device, all its replicas together; None where the device is unknown

    @property
    def total_bytes(self) -> float:
        return self.replicas * (self.weights_bytes + self.kv_bytes)


@dataclass(frozen=True)
class MemoryMap:
    """Every model's part and the device's size (None: unknown)."""

    models: tuple[ModelMemory, ...]
    device_bytes: int | None

    @property
    def used_bytes(self) -> float:
        return sum(m.total_bytes for m in self.models)

    @property
    def free_bytes(self) -> float | None:
        return None if self.device_bytes is None else self.device_bytes - self.used_bytes

    def lines(self) -> list[str]:
        """The map in words, MiB."""
        out = [f"memory: {m.model}: {m.replicas} x (weights {_mib(m.weights_bytes)} + KV at cap {m.max_batch} "
               f"{_mib(m.kv_bytes)}, {m.kv_tokens} tokens)"
               + (f", {m.mem_fraction:.2f} of the device" if m.mem_fraction is not None else "") for m in self.models]
        if self.device_bytes is None:
            return [*out, f"memory: {_mib(self.used_bytes)} in all; the device's memory is unknown"]
        return [*out, f"memory: {_mib(self.used_bytes)} of {_mib(self.device_bytes)} in all, "
                      f"{_mib(self.free_bytes or 0.0)} free"]

    def to_dict(self) -> dict:
        return {"device_bytes": self.device_bytes, "used_bytes": self.used_bytes, "free_bytes": self.free_bytes,
                "models": [{**asdict(m), "total_bytes": m.total_bytes} for m in self.models]}

    @classmethod
    def from_dict(cls, data: dict) -> MemoryMap:
        """The map a placement.json holds (`to_dict`'s fields)."""
        fields = ModelMemory.__dataclass_fields__
        return cls(tuple(ModelMemory(**{k: v for k, v in m.items() if k in fields}) for m in data["models"]),
                   data.get("device_bytes"))


def memory_map(models: list[ModelMemory], device_bytes: int | None) -> MemoryMap:
    """The models placed on a device of `device_bytes`, each given its memory share; MemoryMapError where they
    do not fit within MEMORY_CEILING of it."""
    if device_bytes is None:
        return MemoryMap(tuple(models), None)
    needs = [m.total_bytes / device_bytes for m in models]
    if sum(needs) > MEMORY_CEILING:
        raise MemoryMapError(f"--model: the placement needs {_mib(sum(m.total_bytes for m in models))} "
                             f"({sum(needs):.0%} of the device) and all engines together may take "
                             f"{MEMORY_CEILING:.0%} of its {_mib(device_bytes)} (--device-memory); lower a "
                             "model's cap (--max-batch) or place fewer models")
    spare = (MEMORY_CEILING - sum(needs)) / len(models)
    # rounded down to 0.001, as serve splits a share among replicas, so the shares never sum past the ceiling
    shared = [ModelMemory(**{**asdict(m), "mem_fraction": int(1000 * (need + spare)) / 1000})
              for m, need in zip(models, needs, strict=True)]
    return MemoryMap(tuple(shared), device_bytes)


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"
