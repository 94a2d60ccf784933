import numpy as np
import pytest

from fedcore.data import DatasetSpec, load


def test_spec_parsing():
    assert DatasetSpec.parse("synthetic:0.5,0.5") == DatasetSpec("synthetic", 0.5, 0.5)
    assert str(DatasetSpec.parse("synthetic:1,1")) == "synthetic:1,1"
    assert DatasetSpec.parse("digits").name == "digits"
    for bad in ("synthetic", "synthetic:1", "digits:3", "cifar", "synthetic:-1,0"):
        with pytest.raises(ValueError):
            DatasetSpec.parse(bad)


def test_synthetic_is_the_fedprox_set_with_seed_0():
    data = load(DatasetSpec("synthetic", 1.0, 1.0), 30, 0)
    raw = np.random.RandomState(0).lognormal(4, 2, 30).astype(int) + 50  # the reference's first draw
    assert [c.n + len(c.y_test) for c in data.clients] == raw.tolist()
    assert data.sizes.tolist() == [int(0.9 * n) for n in raw]
    assert (data.num_features, data.num_classes) == (60, 10)
    again = load.__wrapped__(DatasetSpec("synthetic", 1.0, 1.0), 30, 0)
    assert np.array_equal(again.clients[5].x, data.clients[5].x)


def test_digits_two_labels_per_client():
    pytest.importorskip("sklearn")
    data = load(DatasetSpec("digits"), 30, 0)
    assert sum(c.n + len(c.y_test) for c in data.clients) == 1797
    for i, client in enumerate(data.clients):
        assert set(np.unique(np.concatenate([client.y, client.y_test]))) == {i % 10, (i + 1) % 10}
    assert data.sizes.max() > 3 * np.median(data.sizes) > 10 * data.sizes.min()  # skewed (power-law) sizes


@pytest.mark.integration
def test_mnist1d_is_generated_offline_and_leaves_numpys_global_state_alone():
    pytest.importorskip("mnist1d")
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    data = load(DatasetSpec("mnist1d"), 20, 0)
    assert np.array_equal(np.random.get_state()[1], before)
    assert data.num_features == 40 and sum(c.n + len(c.y_test) for c in data.clients) == 5000
