"""FedCore's coreset: per-class k-medoids (FasterPAM) on gradient proxies; each medoid weighs its cluster's size.

A proxy is given as factors whose row-wise Kronecker product is the sample's vector (see
`Model.proxy_factors`), so the Gram matrix is the elementwise product of the factors' Gram matrices:
O(n^2 (C + H)) work instead of O(n^2 C H). Distances are float32 and no matrix exceeds `max_class` squared:
a class larger than that is cut into random blocks of at most `max_class` samples, each clustered on its own
with its share of the medoids; when the class has fewer medoids than blocks, the medoids are chosen on one
random sample of `max_class` points and every point of the class joins its nearest medoid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from kmedoids import fasterpam  # imported here so its load time never counts as selection time

MAX_CLASS = 1024  # 4 MiB of float32 distances per matrix; FasterPAM's time grows with its square too


@dataclass(frozen=True)
class Coreset:
    indices: np.ndarray  # into the client's training set
    weights: np.ndarray  # cluster sizes; they sum to the client's n

    @property
    def size(self) -> int:
        return len(self.indices)


def class_budgets(k: int, labels: np.ndarray) -> dict[int, int]:
    """k_c = min(n_c, ceil(k n_c / n)) for every class present."""
    classes, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    return {int(c): min(int(n_c), math.ceil(k * n_c / n)) for c, n_c in zip(classes, counts, strict=True)}


def select(factors: list[np.ndarray], labels: np.ndarray, k: int, seed: int, max_class: int = MAX_CLASS) -> Coreset:
    """The weighted coreset of about `k` samples (k >= 1): medoids of each class's proxies."""
    if k < 1:
        raise ValueError(f"coreset size must be >= 1, got {k}")
    factors32 = [np.ascontiguousarray(f, dtype=np.float32) for f in factors]
    rng = np.random.RandomState(seed)
    chosen, weights = [], []
    for label, k_c in class_budgets(k, labels).items():
        members = np.flatnonzero(labels == label)
        medoids, sizes = _cluster_class(factors32, members, k_c, rng, max_class)
        chosen.append(medoids)
        weights.append(sizes)
    return Coreset(np.concatenate(chosen), np.concatenate(weights).astype(np.float64))


def _cluster_class(factors: list[np.ndarray], members: np.ndarray, k: int, rng: np.random.RandomState,
                   max_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(medoid indices, cluster sizes) for one class."""
    n = len(members)
    if n <= max_class:
        return _kmedoids(factors, members, k, rng)
    blocks = math.ceil(n / max_class)
    shuffled = rng.permutation(members)
    if k >= blocks:
        parts = np.array_split(shuffled, blocks)
        shares = _apportion_min_one(k, np.array([len(p) for p in parts]))
        results = [_kmedoids(factors, part, share, rng) for part, share in zip(parts, shares, strict=True)]
        return np.concatenate([m for m, _ in results]), np.concatenate([s for _, s in results])
    medoids, _ = _kmedoids(factors, shuffled[:max_class], k, rng)
    nearest = np.argmin(_distances(factors, members, medoids), axis=1)
    return medoids, np.bincount(nearest, minlength=k)


def _kmedoids(factors: list[np.ndarray], members: np.ndarray, k: int,
              rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    if k >= len(members):  # every sample is its own medoid (FasterPAM refuses k = n)
        return members, np.ones(len(members), dtype=np.int64)
    result = fasterpam(_distances(factors, members, members), int(k), random_state=int(rng.randint(2**31 - 1)),
                       n_cpu=1)
    return members[np.asarray(result.medoids)], np.bincount(np.asarray(result.labels), minlength=k)


def _distances(factors: list[np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Euclidean distances (float32) between the proxies of `rows` and of `cols`."""
    gram = np.ones((len(rows), len(cols)), dtype=np.float32)
    sq_rows = np.ones(len(rows), dtype=np.float32)
    sq_cols = np.ones(len(cols), dtype=np.float32)
    for f in factors:
        a, b = f[rows], f[cols]
        gram *= a @ b.T
        sq_rows *= np.einsum("ij,ij->i", a, a)
        sq_cols *= np.einsum("ij,ij->i", b, b)
    gram *= -2.0
    gram += sq_rows[:, None]
    gram += sq_cols[None, :]
    np.maximum(gram, 0.0, out=gram)
    np.sqrt(gram, out=gram)
    if rows is cols:
        np.fill_diagonal(gram, 0.0)
    return gram


def _apportion_min_one(total: int, sizes: np.ndarray) -> np.ndarray:
    """Integers >= 1, proportional to `sizes`, summing to `total` (>= len(sizes)); largest remainder."""
    exact = 1 + (total - len(sizes)) * sizes / sizes.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(exact - counts)[::-1][: total - counts.sum()]] += 1
    return counts
