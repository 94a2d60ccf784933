"""bench against a router that serves several models: the server it records is the model under test's /v1/models
entry, and its metrics count that model's replicas only."""

import asyncio

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.bench.sampler import parse_metrics
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.metrics import merged_metrics
from tests.bench.fake_server import FakeServer
from tests.serve.helpers import running_router

ENGINE_TEXT = """\
# TYPE paretoserve_requests_running gauge
paretoserve_requests_running{{model_name="m"}} {running}
# TYPE paretoserve_max_batch gauge
paretoserve_max_batch{{model_name="m"}} {cap}
"""


def test_a_routers_metrics_of_other_models_are_left_out():
    merged = merged_metrics([({"model": "alpha", "replica": "0"}, ENGINE_TEXT.format(running=2, cap=4)),
                             ({"model": "beta", "replica": "1"}, ENGINE_TEXT.format(running=3, cap=8)),
                             ({"model": "beta", "replica": "2"}, ENGINE_TEXT.format(running=1, cap=8))]).decode()
    assert parse_metrics(merged) == {"running": 6, "max_batch": 20}  # no model asked: every replica, as before
    assert parse_metrics(merged, "beta") == {"running": 4, "max_batch": 16}
    assert parse_metrics(merged, "alpha") == {"running": 2, "max_batch": 4}
    assert parse_metrics(merged, "gamma") == {}


def test_metrics_without_a_model_label_all_count_whatever_the_model():
    one_model = merged_metrics([({"replica": "0"}, ENGINE_TEXT.format(running=2, cap=4)),
                                ({"replica": "1"}, ENGINE_TEXT.format(running=3, cap=4))]).decode()
    assert parse_metrics(one_model, "beta") == {"running": 5, "max_batch": 8}


class ListedFake(FakeServer):
    """A fake replica that lists its model under `name` with a context length of its own."""

    def __init__(self, name: str, max_model_len: int, **config) -> None:
        super().__init__(max_model_len=max_model_len, **config)
        self.name = name

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model", "owned_by": "paretoserve",
                                                         "max_model_len": self.config.max_model_len}]})


@pytest.mark.integration
@pytest.mark.parametrize("asked, model, cap", [("beta", "beta", 8), (None, "alpha", 2), ("default", "alpha", 2)])
def test_bench_through_a_two_model_router_records_and_samples_the_model_asked(asked, model, cap):
    with ListedFake("alpha", 512, max_batch=2) as a, ListedFake("beta", 1024, max_batch=8) as b, \
            running_router({"alpha": [StaticReplica(0, a.url)], "beta": [StaticReplica(1, b.url)]}) as url:
        cfg = BenchConfig(url=url, served_model_name=asked, input_tokens=TokenRange(4, 4),
                          output_tokens=TokenRange(2, 2), requests=4, concurrency=2, energy="none")
        result = asyncio.run(run_bench(cfg, keep_requests=False))
        sent = (a if model == "alpha" else b).state.bodies
    assert result["server"] == {"model": model, "owned_by": "paretoserve", "max_model_len": 512 if cap == 2 else 1024,
                                "paretoserve": True}
    assert result["completed"] == 4 and len(sent) == 4
    assert result["max_batch"] == cap  # this model's replica only, not both models' caps summed
