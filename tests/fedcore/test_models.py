import numpy as np
import pytest

from fedcore.models import Model


def numeric_grad(f, array, eps=1e-6):
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + eps
        up = f()
        array[idx] = saved - eps
        down = f()
        array[idx] = saved
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.fixture(params=[0, 6], ids=["softmax", "mlp"])
def model_and_data(request):
    rng = np.random.RandomState(0)
    model = Model(num_features=4, num_classes=3, hidden=request.param)
    params = model.init(1)
    params = {k: v + rng.normal(0, 0.3, v.shape) for k, v in params.items()}  # off the symmetric start
    x, y, w = rng.normal(size=(7, 4)), rng.randint(0, 3, 7), rng.uniform(0.5, 3.0, 7)
    return model, params, x, y, w


def test_weighted_loss_gradient_matches_finite_differences(model_and_data):
    model, params, x, y, w = model_and_data
    loss, grads = model.loss_and_grad(params, x, y, w)
    for key in params:
        want = numeric_grad(lambda: model.loss_and_grad(params, x, y, w)[0], params[key])
        assert grads[key] == pytest.approx(want, abs=1e-6), key


def test_weighted_loss_is_sum_w_l_over_sum_w(model_and_data):
    model, params, x, y, w = model_and_data
    per_sample = [model.loss_and_grad(params, x[i:i + 1], y[i:i + 1])[0] for i in range(len(y))]
    assert model.loss_and_grad(params, x, y, w)[0] == pytest.approx(np.dot(w, per_sample) / w.sum())
    assert model.loss_and_grad(params, x, y)[0] == pytest.approx(np.mean(per_sample))


def test_proxy_is_the_last_layer_gradient_by_finite_differences(model_and_data):
    model, params, x, y, _ = model_and_data
    proxies = model.last_layer_gradients(params, x, y)
    w_out, b_out = ("w2", "b2") if model.hidden else ("w", "b")
    for i in range(len(y)):
        loss = lambda: model.loss_and_grad(params, x[i:i + 1], y[i:i + 1])[0]  # noqa: E731, B023  (called within the iteration)
        db = numeric_grad(loss, params[b_out])
        dw = numeric_grad(loss, params[w_out])  # (H, C): h_j (p - y)_c
        assert proxies[i] == pytest.approx(np.concatenate([db, dw.ravel()]), abs=1e-6)


def test_proxy_factors_give_the_same_distances(model_and_data):
    model, params, x, y, _ = model_and_data
    if not model.hidden:
        (features,) = model.proxy_factors(params, x, y)  # logistic regression: the features, as the authors
        assert features.dtype == np.float32 and features == pytest.approx(x, rel=1e-6)
        return
    explicit = model.last_layer_gradients(params, x, y)
    e, h1 = model.proxy_factors(params, x, y)
    kron = np.einsum("ij,ik->ijk", e, h1).reshape(len(y), -1)
    d = lambda v: np.linalg.norm(v[:, None] - v[None, :], axis=2)  # noqa: E731
    assert e.dtype == h1.dtype == np.float32  # as the distances that use them
    assert d(kron.astype(np.float64)) == pytest.approx(d(explicit), rel=1e-4, abs=1e-6)
