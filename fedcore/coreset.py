"""FedCore's coreset: per-class k-medoids (FasterPAM) on gradient proxies; each medoid weighs its cluster's size.

A proxy is given as factors whose row-wise Kronecker product is the sample's vector (see
`Model.proxy_factors`), so the Gram matrix is the elementwise product of the factors' Gram matrices:
O(n^2 (C + H)) work instead of O(n^2 C H). Distances are float32, `sqrt(|a|^2 + |b|^2 - 2 a.b)`.

Each class is cut into random blocks, each clustered on its own with its share of the class's medoids: as
many blocks as give each MEDOIDS_PER_BLOCK to twice that many medoids, and none over `max_class` samples.
FasterPAM's time per sample grows with the block, and so do the distances', so small blocks are what keep
selection cheap; a fixed number of medoids per block keeps blocks large where the coreset is sparse. When a
class has fewer medoids than blocks (a coreset under 1 / `max_class` of the class), the medoids are chosen on
one random sample of `max_class` points and every point of the class joins its nearest medoid.

A small client's selection costs numpy calls more than arithmetic (a 100-sample client's takes ~0.1 ms), so
the work is laid out for few of them. One sort puts the samples in class order, shuffled within each class:
every block is then a range of that order, and its first k samples are a uniformly random start for
FasterPAM. Which ranges are blocks, with how many medoids, depends only on the class sizes and k, which are
the same in every round for a client, so that layout is planned once (`_layout`, cached) and reused. Blocks
of similar size share one stacked matrix product, padded to the largest, of at most `min(TILE, max_class)^2`
distances (a larger block goes alone): bounded memory, and no fresh pages to fault in every round; a client
of up to SMALL_CLIENT samples gets one matrix over all of them, its blocks' matrices on the diagonal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

import numpy as np

try:  # the float32 kernel that kmedoids.fasterpam(diss, medoids, n_cpu=1) calls, without its ~5 us of dispatch
    from kmedoids.kmedoids import _fasterpam_f32
except ImportError:  # another kmedoids layout: the public function (imported here: its load is not selection time)
    from kmedoids import fasterpam

    def _fasterpam_f32(diss: np.ndarray, medoids: np.ndarray, max_iter: int) -> tuple:
        result = fasterpam(diss, medoids, max_iter=max_iter, n_cpu=1)
        return result.loss, result.labels, result.medoids, result.n_iter, result.n_swap

MAX_CLASS = 1024  # the most samples clustered together: 4 MiB of float32 distances
MEDOIDS_PER_BLOCK = 8  # blocks of 8-15 medoids: ~18-36 samples at FedCore's usual k ~ 0.44 n
MAX_ITER = 1  # one eager pass over FasterPAM's swaps: objective within 0.5 % of converged, ~10 % less time
TILE = 256  # distances computed at once: TILE^2 float32 = 256 KiB
TILE_ROWS = 1024  # samples gathered at once for them (~256 KiB of float32 proxies)
SMALL_CLIENT = 128  # samples: up to this many, one distance matrix over the whole client (16,384 entries)
PADDING = 4096  # padded distances a tile may compute in vain (besides as many as real ones) to save a product


@dataclass(frozen=True)
class Coreset:
    indices: np.ndarray  # into the client's training set
    weights: np.ndarray  # cluster sizes; they sum to the client's n

    @property
    def size(self) -> int:
        return len(self.indices)


def class_budgets(k: int, counts: Sequence[int]) -> list[int]:
    """Medoids per class, k_c = min(n_c, ceil(k n_c / n)), for classes of `counts` samples (n their sum), as the
    authors' code shares a coreset of about k among classes."""
    n = sum(counts)
    return [min(n_c, math.ceil(k * n_c / n)) for n_c in counts]


def block_count(n_c: int, k_c: int, max_class: int = MAX_CLASS, medoids_per_block: int = MEDOIDS_PER_BLOCK) -> int:
    """Blocks for a class of n_c samples and k_c medoids: medoids_per_block or more medoids each, none over
    max_class samples."""
    return max(1, math.ceil(n_c / max_class), k_c // medoids_per_block)


def select(factors: list[np.ndarray], labels: np.ndarray, k: int, rng: np.random.RandomState | int,
           max_class: int = MAX_CLASS, medoids_per_block: int = MEDOIDS_PER_BLOCK) -> Coreset:
    """The weighted coreset of about `k` samples (k >= 1): medoids of each class's proxies (labels 0 .. C-1).
    `rng`: the client's RandomState (n uniform numbers are drawn from it) or a seed. One distance matrix per
    class, as the authors' code: max_class = medoids_per_block = n."""
    if k < 1:
        raise ValueError(f"coreset size must be >= 1, got {k}")
    draw = rng if isinstance(rng, np.random.RandomState) else np.random.default_rng(rng)
    factors32 = [np.asarray(f, dtype=np.float32) for f in factors]
    order = (labels + draw.random(len(labels))).argsort()  # by class, shuffled within each (methods: no dispatch)
    layout = _layout(tuple(np.bincount(labels).tolist()), k, max_class, medoids_per_block)
    indices, weights = [order.take(layout.own)], [layout.own_weights]
    for start, n_c, k_c in layout.assigned:
        medoids, sizes = _sample_and_assign(factors32, order[start:start + n_c], k_c, max_class)
        indices.append(medoids)
        weights.append(sizes)
    if layout.blocks:
        medoids, sizes = _cluster_blocks(factors32, order, layout)
        indices.append(medoids)
        weights.append(sizes)
    return Coreset(np.concatenate(indices), np.concatenate(weights, dtype=np.float64))


@dataclass(frozen=True)
class _Layout:
    """Where a client's selection does what, as positions in its class-sorted, shuffled `order`: a pure function
    of its class sizes and k, so it is planned once per client (`_layout`) and reused in every round."""

    own: np.ndarray  # samples that are their own medoid (FasterPAM refuses k = n)
    own_weights: np.ndarray  # their weights: ones
    assigned: tuple[tuple[int, int, int], ...]  # (start, size, medoids): classes with fewer medoids than blocks
    blocks: tuple[tuple[int, int, int], ...]  # (start, size, medoids), in the order they are clustered
    tiles: tuple[tuple[int, int, np.ndarray | None], ...]  # (first, stop, padded rows of a stacked product or
    #                                                          None: one square matrix over the whole client)
    medoid_offsets: np.ndarray  # each block's start, repeated for its medoids
    cluster_offsets: np.ndarray  # each block's first medoid (among all blocks'), repeated for its samples
    starts: np.ndarray  # 0 .. max medoids - 1: FasterPAM's initial medoids (read, never written)


@lru_cache(maxsize=1024)
def _layout(counts: tuple[int, ...], k: int, max_class: int, medoids_per_block: int) -> _Layout:
    """The layout of a client with `counts` samples per class and a coreset of about k: each class's k_c, its
    blocks (as even as can be, the larger ones first, and so are their medoids) and their tiles."""
    n = sum(counts)
    own: list[range] = []
    assigned: list[tuple[int, int, int]] = []
    blocks: list[tuple[int, int, int]] = []
    start = 0
    for n_c, k_c in zip(counts, class_budgets(k, counts), strict=True):
        count = block_count(n_c, k_c, max_class, medoids_per_block)
        if k_c >= n_c:
            own.append(range(start, start + n_c))
        elif k_c < count:
            assigned.append((start, n_c, k_c))
        else:  # k_c >= count: every block gets a medoid
            size, longer = divmod(n_c, count)
            share, more = divmod(k_c, count)
            first = start
            for b in range(count):
                n_b, k_b = size + (b < longer), share + (b < more)
                if k_b < n_b:
                    blocks.append((first, n_b, k_b))
                else:
                    own.append(range(first, first + n_b))
                first += n_b
        start += n_c
    own_positions = np.fromiter((i for r in own for i in r), dtype=np.intp)
    return _block_layout(blocks, n, min(TILE, max_class) ** 2, own_positions, tuple(assigned))


def _block_layout(blocks: list[tuple[int, int, int]], n: int, max_entries: int, own: np.ndarray | None = None,
                  assigned: tuple[tuple[int, int, int], ...] = ()) -> _Layout:
    """The tiles of `blocks` among n samples (see _tiles; up to SMALL_CLIENT samples, one square matrix) and
    the offsets that turn each block's FasterPAM result into positions and cluster numbers."""
    own = np.empty(0, dtype=np.intp) if own is None else own
    tiles: list[tuple[int, int, np.ndarray | None]] = []
    if blocks and n <= SMALL_CLIENT and n * n <= max_entries:
        tiles.append((0, len(blocks), None))
    elif blocks:
        blocks.sort(key=itemgetter(1), reverse=True)
        steps = np.arange(blocks[0][1])
        for first, stop in _tiles(blocks, max_entries):
            begins = np.array([s for s, _, _ in blocks[first:stop]])[:, None]
            lasts = begins + np.array([n_b for _, n_b, _ in blocks[first:stop]])[:, None] - 1
            tiles.append((first, stop, np.minimum(begins + steps[:blocks[first][1]], lasts)))  # pad: a last row again
    begins, sizes, ks = np.array(blocks, dtype=np.intp).reshape(-1, 3).T
    layout = _Layout(own=own, own_weights=np.ones(len(own)), assigned=assigned, blocks=tuple(blocks),
                     tiles=tuple(tiles), medoid_offsets=begins.repeat(ks),
                     cluster_offsets=(ks.cumsum() - ks).repeat(sizes),
                     starts=np.arange(ks.max(initial=0), dtype=np.uintp))
    for array in (layout.own, layout.own_weights, layout.medoid_offsets, layout.cluster_offsets, layout.starts,
                  *(rows for _, _, rows in tiles if rows is not None)):
        array.setflags(write=False)  # shared by every round that reuses the layout
    return layout


def _cluster_blocks(factors: list[np.ndarray], order: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """(medoid indices, cluster sizes) of all blocks: FasterPAM on each block's distance matrix, started from the
    block's first k samples (a random set: `order` is shuffled within classes; FasterPAM is then deterministic)."""
    medoids, labels = [], []
    for first, stop, rows in layout.tiles:
        tile = layout.blocks[first:stop]
        if rows is None:  # a small client: each block's matrix is a piece of the whole client's diagonal
            dist = _distances_within([f.take(order, axis=0) for f in factors])  # (take: 3x faster than f[order])
            views = [dist[s:s + n_b, s:s + n_b] for s, n_b, _ in tile]
        else:
            samples = order.take(rows)
            dist = _distances_within([f.take(samples, axis=0) for f in factors])
            views = [view[:n_b, :n_b] for view, (_, n_b, _) in zip(dist, tile, strict=True)]
        for view, (_, _, k_b) in zip(views, tile, strict=True):
            _, block_labels, block_medoids, _, _ = _fasterpam_f32(view, layout.starts[:k_b], MAX_ITER)
            medoids.append(block_medoids)
            labels.append(block_labels)
    positions = np.concatenate(medoids, dtype=np.intp) + layout.medoid_offsets
    clusters = np.concatenate(labels, dtype=np.intp) + layout.cluster_offsets
    return order.take(positions), np.bincount(clusters, minlength=len(positions))


def _tiles(blocks: list[tuple[int, int, int]], max_entries: int):
    """(first, stop): runs of blocks (by decreasing size) whose distances are one stacked product, padded to
    the run's first block: within `max_entries` distances and TILE_ROWS samples (a first block always fits),
    and at most as many padded distances as real ones plus PADDING."""
    first = 0
    while first < len(blocks):
        side, stop, real = blocks[first][1], first + 1, blocks[first][1] ** 2
        while stop < len(blocks):
            padded, more = (stop - first + 1) * side * side, real + blocks[stop][1] ** 2
            if padded > max_entries or (stop - first + 1) * side > TILE_ROWS or padded - more > more + PADDING:
                break
            stop, real = stop + 1, more
        yield first, stop
        first = stop


def _distances_within(parts: list[np.ndarray]) -> np.ndarray:
    """Euclidean distances (float32) among the rows of each (..., m, d) factor's last two axes: (..., m, m).
    The squared norms are the Gram matrix's own diagonal, so every d(i, i) is exactly 0."""
    gram = parts[0] @ parts[0].swapaxes(-1, -2)
    for a in parts[1:]:
        np.multiply(gram, a @ a.swapaxes(-1, -2), out=gram)
    sq = gram.diagonal(axis1=-2, axis2=-1).copy()
    gram *= -2.0
    gram += sq[..., :, None]
    gram += sq[..., None, :]
    np.maximum(gram, 0.0, out=gram)
    return np.sqrt(gram, out=gram)


def _sample_and_assign(factors: list[np.ndarray], members: np.ndarray, k: int,
                       max_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Fewer medoids than blocks: FasterPAM on the first max_class (at least k + 1) of the (shuffled) members,
    then every member joins its nearest medoid (in row chunks of at most max_class^2 distances)."""
    sample = members[:max(max_class, k + 1)]
    medoids, _ = _cluster_blocks(factors, sample, _block_layout([(0, len(sample), k)], len(sample), len(sample) ** 2))
    rows = max(1, max_class * max_class // k)
    nearest = np.concatenate([np.argmin(_distances(factors, members[i:i + rows], medoids), axis=1)
                              for i in range(0, len(members), rows)])
    return medoids, np.bincount(nearest, minlength=k)


def _distances(factors: list[np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Euclidean distances (float32) between the proxies of `rows` and of `cols`."""
    gram = np.ones((len(rows), len(cols)), dtype=np.float32)
    sq_rows = np.ones(len(rows), dtype=np.float32)
    sq_cols = np.ones(len(cols), dtype=np.float32)
    for f in factors:
        a, b = f.take(rows, axis=0), f.take(cols, axis=0)
        gram *= a @ b.T
        sq_rows *= np.einsum("ij,ij->i", a, a)
        sq_cols *= np.einsum("ij,ij->i", b, b)
    gram *= -2.0
    gram += sq_rows[:, None]
    gram += sq_cols[None, :]
    np.maximum(gram, 0.0, out=gram)
    return np.sqrt(gram, out=gram)
