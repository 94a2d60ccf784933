"""What every data set hands the federation: each client's train and held-out arrays, and the spec naming it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATASETS = ("synthetic", "digits", "mnist1d")


@dataclass(frozen=True)
class DatasetSpec:
    """A data set by name; `synthetic` also carries FedProx's (alpha, beta) heterogeneity."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        """`synthetic:A,B`, `digits` or `mnist1d`; ValueError naming what is wrong."""
        name, _, args = text.partition(":")
        if name not in DATASETS:
            raise ValueError(f"unknown data set {name!r} (choose synthetic:A,B, digits or mnist1d)")
        if name != "synthetic":
            if args:
                raise ValueError(f"{name} takes no parameters, got {args!r}")
            return cls(name)
        try:
            alpha, beta = (float(v) for v in args.split(","))
        except ValueError:
            raise ValueError(f"synthetic needs alpha,beta, e.g. synthetic:1,1 (got {text!r})") from None
        if alpha < 0 or beta < 0:
            raise ValueError(f"synthetic alpha and beta must be >= 0 (got {text!r})")
        return cls(name, alpha, beta)

    def __str__(self) -> str:
        return f"synthetic:{self.alpha:g},{self.beta:g}" if self.name == "synthetic" else self.name


@dataclass(frozen=True)
class ClientData:
    """One client's local training set and its held-out split (features float64, labels int64)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FederatedData:
    clients: tuple[ClientData, ...]
    num_features: int
    num_classes: int

    @property
    def sizes(self) -> np.ndarray:
        """Training samples per client (the n_i of the straggler model)."""
        return np.array([c.n for c in self.clients])


def split_client(x: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.RandomState) -> ClientData:
    """Shuffle one client's samples and hold out the last `test_fraction` of them (at least one stays in training)."""
    order = rng.permutation(len(y))
    n_train = max(1, int((1.0 - test_fraction) * len(y)))
    train, test = order[:n_train], order[n_train:]
    return ClientData(x[train].astype(np.float64), y[train].astype(np.int64),
                      x[test].astype(np.float64), y[test].astype(np.int64))
