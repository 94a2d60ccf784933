import math

import numpy as np
import pytest

from fedcore.schedule import (
    DROPPED,
    Plan,
    compute_power,
    coreset_budget,
    epoch_deadline,
    global_coreset_size,
    plan_round,
    sample_clients,
)


def sizes_and_speeds(seed=0, clients=30):
    sizes = np.random.RandomState(seed).lognormal(4, 2, clients).astype(int) + 50
    return sizes, compute_power(sizes)


def test_compute_power_follows_the_linear_rule():
    sizes = np.array([100, 200, 300, 400])
    speeds = compute_power(sizes)
    assert speeds == pytest.approx(1 + 0.25 * (sizes - sizes.mean()) / sizes.std())
    assert compute_power(np.array([5, 5, 5])).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("stragglers", [0.1, 0.3, 0.5])
def test_deadline_percentile_leaves_s_stragglers(stragglers):
    sizes, speeds = sizes_and_speeds()
    deadline = epoch_deadline(sizes, speeds, stragglers)
    slow = int(np.sum(sizes / speeds > deadline))
    assert slow == pytest.approx(stragglers * len(sizes), abs=1)


@pytest.mark.parametrize("n,speed,deadline,epochs", [(4645, 1.87, 404.3, 10), (1000, 0.9, 300.0, 5),
                                                     (77, 1.0, 40.0, 2), (500, 1.2, 123.4, 10)])
def test_coreset_budget_fills_the_round_to_within_one_sample(n, speed, deadline, epochs):
    k = coreset_budget(n, speed, deadline, epochs)
    exact = (speed * deadline * epochs - n) / (epochs - 1)
    assert 0 <= k - exact < 1
    work = n + (epochs - 1) * k  # samples processed: one full epoch, then E - 1 coreset epochs
    assert 0 <= work - speed * epochs * deadline < epochs - 1


def test_plans_per_method():
    fast, slow, hopeless = (100, 1.0), (300, 1.0), (2000, 1.0)
    deadline, epochs = 150.0, 10
    assert plan_round("fedavg", *slow, deadline, epochs) == Plan(full_epochs=10)
    assert plan_round("fedavg-ds", *fast, deadline, epochs) == Plan(full_epochs=10)
    assert plan_round("fedavg-ds", *slow, deadline, epochs) is DROPPED
    assert plan_round("fedprox", *slow, deadline, epochs) == Plan(full_epochs=5, proximal=True)
    # int(150 / 5000 * 10) = 0 whole epochs: the 1,500 samples that fit, a partial epoch
    assert plan_round("fedprox", 5000, 1.0, deadline, epochs) == Plan(full_epochs=1, proximal=True,
                                                                      sample_budget=1500)
    assert plan_round("fedprox", 5000, 0.01, 9.0, epochs) is DROPPED  # 0.9 samples fit: not even one
    assert plan_round("fedcore", *fast, deadline, epochs) == Plan(full_epochs=10, sample_budget=1500)
    assert plan_round("fedcore", 151, 1.0, 150.9, epochs).sample_budget == 1509  # not 1510: cut to the deadline
    # 10 * 150 < 2000: not even the first epoch fits; a coreset at the received model, sized once measured
    assert plan_round("fedcore", *hopeless, deadline, epochs) == Plan(coreset_epochs=10, sample_budget=1500,
                                                                      coreset_at_global=True)
    assert plan_round("fedcore", 5000, 0.01, 9.0, epochs) is DROPPED
    core = plan_round("fedcore", *slow, deadline, epochs)
    assert (core.full_epochs, core.coreset_epochs) == (1, 9)
    assert core.coreset_size == math.ceil((1500 - 300) / 9)
    with pytest.raises(ValueError, match="unknown method"):
        plan_round("fedsgd", *fast, deadline, epochs)


def test_a_coreset_at_the_received_model_fills_what_the_forward_pass_leaves():
    assert global_coreset_size(1500, 120.5, 10) == 138  # ceil(1379.5 / 10): the budget cuts the last epoch
    assert global_coreset_size(1500, 0.0, 1) == 1500
    assert global_coreset_size(1500, 1498.5, 10) == 1  # 1.5 samples left: one epoch of one sample, cut there
    assert global_coreset_size(1500, 1499.5, 10) == 0  # under one sample left: dropped
    assert global_coreset_size(1500, 2000.0, 10) == 0


def test_same_clients_for_every_method_and_seeded_by_round():
    assert sample_clients(3, 30, 10) == sample_clients(3, 30, 10)
    assert sample_clients(3, 30, 10) != sample_clients(4, 30, 10)
    np.random.seed(7)  # the authors' sampler: np.random.seed(round); choice(N, K, replace=False)
    expected = np.random.choice(30, 10, replace=False).tolist()
    assert sample_clients(7, 30, 10) == expected
    assert sample_clients(1, 5, 5) == [0, 1, 2, 3, 4]


def test_training_stops_at_the_sample_budget():
    from fedcore.models import Model
    from fedcore.training import SGD, train_epochs

    rng = np.random.RandomState(0)
    model = Model(3, 2)
    x, y = rng.normal(size=(20, 3)), rng.randint(0, 2, 20)
    _, done = train_epochs(model, model.init(0), x, y, 5, SGD(0.1, 8), rng)
    assert done == 100
    _, done = train_epochs(model, model.init(0), x, y, 5, SGD(0.1, 8), rng, max_samples=47)
    assert done == 47
    _, done = train_epochs(model, model.init(0), x, y, 5, SGD(0.1, 8), rng, max_samples=-3)
    assert done == 0
