"""Synthetic(1,1) at E = 2 and E = 5, where one epoch of the two largest clients (45 % of the data) does not fit
the round's deadline: FedProx and FedCore still train them, within the deadline, and drop no one."""

import pytest

pytest.importorskip("flwr")
pytest.importorskip("kmedoids")

from fedcore.config import RunConfig  # noqa: E402
from fedcore.data import DatasetSpec  # noqa: E402
from fedcore.results import summarise  # noqa: E402
from fedcore.runner import run_methods  # noqa: E402

pytestmark = pytest.mark.integration

ROUNDS = 6  # rounds 1-6 select the two largest clients (n = 4,645 and 4,388) three times


@pytest.mark.parametrize("epochs", [2, 5])
def test_no_client_is_dropped_when_an_epoch_overruns_the_deadline(epochs):
    config = RunConfig(dataset=DatasetSpec("synthetic", 1.0, 1.0), clients=30, per_round=10, rounds=ROUNDS,
                       epochs=epochs, stragglers=0.3, seed=0, methods=("fedprox", "fedcore"), max_class=256)
    summary = summarise(config, run_methods(config, "inprocess"), "inprocess", targets=[0.5])
    for name, method in summary["methods"].items():
        assert method["dropped_client_rounds"] == 0, name
        assert method["partial_epoch_client_rounds"] >= 2, name
        assert method["round_time_over_deadline"]["max"] <= 1.0 + 1e-9, name
        assert method["final_accuracy"] > method["rounds"][0]["accuracy"] + 0.2, name
