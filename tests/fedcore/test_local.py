"""A client whose first full epoch does not fit the round's deadline: FedProx and FedCore still train within
it; only a client whose forward pass alone overruns the deadline is dropped, and the run counts it."""

import math

import numpy as np
import pytest

pytest.importorskip("kmedoids")

from fedcore import local  # noqa: E402
from fedcore.data import ClientData  # noqa: E402
from fedcore.history import ClientRound, History  # noqa: E402
from fedcore.models import Model  # noqa: E402
from fedcore.results import summarise_method  # noqa: E402
from fedcore.schedule import plan_round  # noqa: E402
from fedcore.training import SGD  # noqa: E402

N, SPEED, DEADLINE, EPOCHS = 3000, 1.2, 400.0, 5  # one epoch takes 2,500 > E D = 2,000: only 2,400 samples fit


def client(n=N, features=6, classes=3, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, features))
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return ClientData(x, y, x[:0], y[:0])


@pytest.mark.parametrize("method,hidden", [("fedprox", 0), ("fedcore", 0), ("fedcore", 8)])
def test_a_client_whose_first_epoch_overruns_trains_within_the_deadline(method, hidden):
    data, model = client(), Model(6, 3, hidden)
    assert data.n / SPEED > EPOCHS * DEADLINE
    plan = plan_round(method, data.n, SPEED, DEADLINE, EPOCHS)
    start = model.init(0)
    result = local.local_update(model, start, data, plan, SPEED, SGD(0.05, 8, mu=1.0 if plan.proximal else 0.0),
                                np.random.RandomState(1))
    assert not result.dropped and 0 < result.samples < data.n
    assert result.sim_time <= EPOCHS * DEADLINE
    assert any(not np.array_equal(result.params[k], start[k]) for k in start)
    if method == "fedprox":  # a partial epoch: every sample that fits
        assert result.samples == math.floor(SPEED * EPOCHS * DEADLINE) and result.coreset_size == 0
    else:  # E epochs on a coreset; the forward pass for its proxies is on the clock
        assert 0 < result.coreset_size < data.n and result.selection_cpu_s > 0
        assert result.sim_time > result.samples / SPEED


def test_fedcore_charges_the_forward_pass_at_the_probed_rate(monkeypatch):
    record: list[float] = []
    monkeypatch.setattr(local, "probe_rate", lambda *args: (1.0, 100))  # 10 ms of CPU per training sample
    monkeypatch.setattr(local, "global_coreset_size", lambda budget, forward, epochs: record.append(forward) or 40)
    data, model = client(), Model(6, 3)
    plan = plan_round("fedcore", data.n, SPEED, DEADLINE, EPOCHS)
    result = local.local_update(model, model.init(0), data, plan, SPEED, SGD(0.05, 8), np.random.RandomState(1))
    forward = result.sim_time * SPEED - result.samples
    assert record == [pytest.approx(forward)] and 0 < forward < 1  # well under 10 ms for 3,000 samples


def test_a_client_whose_forward_pass_alone_overruns_is_dropped_and_counted(monkeypatch):
    monkeypatch.setattr(local, "probe_rate", lambda *args: (1e-9, 512))  # the forward pass: millions of samples
    data, model = client(), Model(6, 3, 8)
    plan = plan_round("fedcore", data.n, SPEED, DEADLINE, EPOCHS)
    result = local.local_update(model, model.init(0), data, plan, SPEED, SGD(0.05, 8), np.random.RandomState(1))
    assert result.dropped and result.samples == 0 and result.sim_time == 0
    history = History("fedcore", epoch_deadline=DEADLINE, epochs=EPOCHS)
    history.add_round(1, [ClientRound(0, data.n, SPEED, result.dropped, result.samples, result.sim_time,
                                      result.coreset_size, result.selection_cpu_s, result.train_cpu_s)])
    history.set_evaluation(0, 0.3, 1.0)
    history.set_evaluation(1, 0.3, 1.0)
    summary = summarise_method(history, [0.5])
    assert summary["dropped_client_rounds"] == 1 and summary["partial_epoch_client_rounds"] == 0
