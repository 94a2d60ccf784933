"""Federated data sets, all generated or bundled offline; each load is cached per process."""

from __future__ import annotations

from functools import lru_cache

from fedcore.data.base import ClientData, DatasetSpec, FederatedData

__all__ = ["ClientData", "DatasetSpec", "FederatedData", "load"]


@lru_cache(maxsize=4)
def load(spec: DatasetSpec, num_clients: int, seed: int) -> FederatedData:
    """The data set `spec` split over `num_clients` clients (same arrays for the same arguments)."""
    if spec.name == "synthetic":
        from fedcore.data.synthetic import synthetic

        return synthetic(spec.alpha, spec.beta, num_clients, seed)
    from fedcore.data import bundled

    return getattr(bundled, spec.name)(num_clients, seed)
