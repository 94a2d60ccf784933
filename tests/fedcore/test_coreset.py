import numpy as np
import pytest

pytest.importorskip("kmedoids")

from fedcore import coreset  # noqa: E402
from fedcore.coreset import class_budgets, select  # noqa: E402


def blobs(rng, n_per=(40, 60), dims=5):
    x = np.concatenate([rng.normal(i * 100.0, 1.0, (m, dims)) for i, m in enumerate(n_per)])
    return x


def test_class_budgets_are_ceil_and_capped():
    assert class_budgets(10, [3, 7, 90]) == [1, 1, 9]
    assert class_budgets(100, [3, 7, 90]) == [3, 7, 90]
    assert class_budgets(5, [0, 4, 6]) == [0, 2, 3]


@pytest.mark.parametrize("k,max_class", [(1, 1024), (10, 1024), (45, 1024), (45, 8), (199, 1024)])
def test_the_selection_gives_each_class_its_budget(k, max_class):
    rng = np.random.RandomState(5)
    y = rng.choice(4, 200, p=[0.55, 0.3, 0.1, 0.05])
    core = select([rng.normal(size=(200, 3))], y, k, rng=0, max_class=max_class)
    assert np.bincount(y[core.indices], minlength=4).tolist() == class_budgets(k, np.bincount(y).tolist())


@pytest.mark.parametrize("k", [1, 7, 33, 99])
def test_weights_sum_to_n(k):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(120, 6))
    y = rng.randint(0, 4, 120)
    core = select([x], y, k, rng=1)
    assert core.weights.sum() == 120
    assert len(set(core.indices.tolist())) == core.size
    assert k <= core.size <= k + 4  # per-class ceil adds at most one per class
    assert all(y[i] in y for i in core.indices)


def test_k_equal_n_gives_the_full_data_with_unit_weights():
    rng = np.random.RandomState(0)
    x, y = rng.normal(size=(50, 3)), rng.randint(0, 3, 50)
    core = select([x], y, 50, rng=0)
    assert sorted(core.indices.tolist()) == list(range(50))
    assert core.weights.tolist() == [1.0] * 50


def test_two_separated_blobs_give_one_medoid_each():
    rng = np.random.RandomState(0)
    x = blobs(rng)
    core = select([x], np.zeros(100, dtype=int), 2, rng=0)
    assert sorted(core.indices < 40) == [False, True]  # one medoid in each blob
    assert sorted(core.weights.tolist()) == [40.0, 60.0]


def test_seeds_repeat():
    rng = np.random.RandomState(3)
    x, y = rng.normal(size=(300, 4)), rng.randint(0, 3, 300)
    a, b = select([x], y, 30, rng=5), select([x], y, 30, rng=5)
    assert a.indices.tolist() == b.indices.tolist() and a.weights.tolist() == b.weights.tolist()


def test_factored_distances_equal_the_explicit_kronecker_proxy():
    rng = np.random.RandomState(1)
    e, h = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
    explicit = np.einsum("ij,ik->ijk", e, h).reshape(20, -1)
    got = coreset._distances_within([e.astype(np.float32), h.astype(np.float32)])
    want = np.linalg.norm(explicit[:, None, :] - explicit[None, :, :], axis=2)
    assert got.dtype == np.float32
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert (np.diagonal(got) == 0).all()
    stacked = coreset._distances_within([e.astype(np.float32).reshape(4, 5, 3), h.astype(np.float32).reshape(4, 5, 5)])
    assert stacked == pytest.approx(np.stack([want[i:i + 5, i:i + 5] for i in range(0, 20, 5)]), rel=1e-4, abs=1e-4)


def test_the_kernel_called_is_public_fasterpam():
    from kmedoids import fasterpam

    rng = np.random.RandomState(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    dist = coreset._distances_within([x])
    start = np.arange(7, dtype=np.uintp)
    _, labels, medoids, _, _ = coreset._fasterpam_f32(dist, start, 100)
    public = fasterpam(dist, start, n_cpu=1)
    assert medoids.tolist() == public.medoids.tolist() and labels.tolist() == public.labels.tolist()


def test_blocks_carry_medoids_per_block_to_twice_that():
    m = coreset.MEDOIDS_PER_BLOCK
    assert coreset.block_count(5000, 2223) == 2223 // m
    assert m <= 2223 / coreset.block_count(5000, 2223) < 2 * m
    assert coreset.block_count(100, m - 1) == 1
    assert coreset.block_count(5000, 3, max_class=1024) == 5  # never a block over max_class


def test_padded_tiles_give_the_blocks_own_clustering(monkeypatch):
    rng = np.random.RandomState(6)
    x, y = rng.normal(size=(700, 5)), rng.choice(4, 700, p=[0.6, 0.2, 0.15, 0.05])
    together = select([x], y, 300, rng=3)
    monkeypatch.setattr(coreset, "TILE_ROWS", 1)  # every block in a product of its own, unpadded
    coreset._layout.cache_clear()  # (layouts are planned once per client)
    alone = select([x], y, 300, rng=3)
    assert together.indices.tolist() == alone.indices.tolist()
    assert together.weights.tolist() == alone.weights.tolist()
    coreset._layout.cache_clear()


@pytest.mark.parametrize("k", [3, 40, 400])  # fewer medoids than blocks (sample + assign), and more
def test_large_classes_stay_under_the_matrix_cap(monkeypatch, k):
    entries = []
    within, between = coreset._distances_within, coreset._distances

    def recording_within(parts):
        out = within(parts)
        entries.append(out.size)
        return out

    def recording_between(factors, rows, cols):
        entries.append(len(rows) * len(cols))
        return between(factors, rows, cols)

    monkeypatch.setattr(coreset, "_distances_within", recording_within)
    monkeypatch.setattr(coreset, "_distances", recording_between)
    rng = np.random.RandomState(2)
    x = rng.normal(size=(1000, 4))
    core = select([x], np.zeros(1000, dtype=int), k, rng=0, max_class=128)
    assert core.size == k and core.weights.sum() == 1000
    assert entries and max(entries) <= 128 * 128


def test_a_small_clients_square_matrix_gives_the_tiles_clustering(monkeypatch):
    rng = np.random.RandomState(7)
    x, y = rng.normal(size=(120, 6)), rng.choice(5, 120, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    assert len(y) <= coreset.SMALL_CLIENT
    square = select([x], y, 55, rng=2)
    monkeypatch.setattr(coreset, "SMALL_CLIENT", 0)
    coreset._layout.cache_clear()
    tiles = select([x], y, 55, rng=2)
    coreset._layout.cache_clear()
    assert square.indices.tolist() == tiles.indices.tolist()
    assert square.weights.tolist() == tiles.weights.tolist()


def test_the_layout_is_planned_once_and_never_written():
    coreset._layout.cache_clear()
    rng = np.random.RandomState(8)
    e, h = rng.normal(size=(400, 3)), rng.normal(size=(400, 9))  # an MLP's two proxy factors
    y = rng.randint(0, 3, 400)
    first, again = select([e, h], y, 170, rng=1), select([e, h], y, 170, rng=2)
    assert coreset._layout.cache_info().hits == 1
    assert first.weights.sum() == again.weights.sum() == 400 and first.size == again.size
    layout = coreset._layout(tuple(np.bincount(y).tolist()), 170, coreset.MAX_CLASS, coreset.MEDOIDS_PER_BLOCK)
    assert not layout.starts.flags.writeable and not layout.cluster_offsets.flags.writeable


def test_a_tiny_class_cap_still_gives_k_medoids():
    rng = np.random.RandomState(9)
    x = rng.normal(size=(200, 3))
    core = select([x], np.zeros(200, dtype=int), 30, rng=0, max_class=4)  # 50 blocks, 30 medoids: sample + assign
    assert core.size == 30 and core.weights.sum() == 200
