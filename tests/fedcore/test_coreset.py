import numpy as np
import pytest

pytest.importorskip("kmedoids")

from fedcore import coreset  # noqa: E402
from fedcore.coreset import class_budgets, select  # noqa: E402


def blobs(rng, n_per=(40, 60), dims=5):
    x = np.concatenate([rng.normal(i * 100.0, 1.0, (m, dims)) for i, m in enumerate(n_per)])
    return x


def test_class_budgets_are_ceil_and_capped():
    labels = np.array([0] * 3 + [1] * 7 + [2] * 90)
    assert class_budgets(10, labels) == {0: 1, 1: 1, 2: 9}
    assert class_budgets(100, labels) == {0: 3, 1: 7, 2: 90}


@pytest.mark.parametrize("k", [1, 7, 33, 99])
def test_weights_sum_to_n(k):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(120, 6))
    y = rng.randint(0, 4, 120)
    core = select([x], y, k, seed=1)
    assert core.weights.sum() == 120
    assert len(set(core.indices.tolist())) == core.size
    assert k <= core.size <= k + 4  # per-class ceil adds at most one per class
    assert all(y[i] in y for i in core.indices)


def test_k_equal_n_gives_the_full_data_with_unit_weights():
    rng = np.random.RandomState(0)
    x, y = rng.normal(size=(50, 3)), rng.randint(0, 3, 50)
    core = select([x], y, 50, seed=0)
    assert sorted(core.indices.tolist()) == list(range(50))
    assert core.weights.tolist() == [1.0] * 50


def test_two_separated_blobs_give_one_medoid_each():
    rng = np.random.RandomState(0)
    x = blobs(rng)
    core = select([x], np.zeros(100, dtype=int), 2, seed=0)
    assert sorted(core.indices < 40) == [False, True]  # one medoid in each blob
    assert sorted(core.weights.tolist()) == [40.0, 60.0]


def test_seeds_repeat():
    rng = np.random.RandomState(3)
    x, y = rng.normal(size=(300, 4)), rng.randint(0, 3, 300)
    a, b = select([x], y, 30, seed=5), select([x], y, 30, seed=5)
    assert a.indices.tolist() == b.indices.tolist() and a.weights.tolist() == b.weights.tolist()


def test_factored_distances_equal_the_explicit_kronecker_proxy():
    rng = np.random.RandomState(1)
    e, h = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
    explicit = np.einsum("ij,ik->ijk", e, h).reshape(20, -1)
    idx = np.arange(20)
    got = coreset._distances([e.astype(np.float32), h.astype(np.float32)], idx, idx)
    want = np.linalg.norm(explicit[:, None, :] - explicit[None, :, :], axis=2)
    assert got.dtype == np.float32
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("k", [3, 40])  # fewer medoids than blocks (sample + assign) and more (blocks)
def test_large_classes_stay_under_the_matrix_cap(monkeypatch, k):
    shapes = []
    real = coreset._distances

    def recording(factors, rows, cols):
        shapes.append((len(rows), len(cols)))
        return real(factors, rows, cols)

    monkeypatch.setattr(coreset, "_distances", recording)
    rng = np.random.RandomState(2)
    x = rng.normal(size=(1000, 4))
    core = select([x], np.zeros(1000, dtype=int), k, seed=0, max_class=128)
    assert core.size == k and core.weights.sum() == 1000
    assert max(r * c for r, c in shapes) <= 128 * 128
