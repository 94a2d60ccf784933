"""One replica set-up: the engine knobs a sweep point ran with and a plan deploys (points.jsonl's `config`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ReplicaSetup:
    """`replicas` engines, each with batch cap `max_batch`, KV budget `kv_tokens` (tokens) and `threads`."""

    max_batch: int
    kv_tokens: int | None  # None = the engine's own default
    threads: int  # per replica; 0 = the usable cores divided evenly among the replicas
    replicas: int = 1

    def key(self) -> str:
        """A stable name for the point: what --resume matches finished points by."""
        return f"b{self.max_batch}-kv{self.kv_tokens or 'default'}-t{self.threads}-r{self.replicas}"

    def as_dict(self) -> dict:
        return asdict(self)
