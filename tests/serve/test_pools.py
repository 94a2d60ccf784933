"""The router's pools: which model's replicas a request's `model` names."""

import pytest

from paretoserve.openai_api.protocol import ApiError
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.pools import Pools


def _replicas(*indexes: int) -> list[StaticReplica]:
    return [StaticReplica(i, f"http://127.0.0.1:{9000 + i}") for i in indexes]


def test_one_unnamed_model_takes_every_request_as_before():
    pools = Pools(_replicas(0, 1))
    assert not pools.named and len(pools.pools) == 1
    assert all(pools.for_model(m) is pools.pools[0] for m in (None, "default", "anything"))  # the engine checks it
    assert [b.labels for b in pools.backends] == [{"replica": "0"}, {"replica": "1"}]


def test_several_models_each_get_their_own_replicas_and_the_first_is_the_default():
    pools = Pools({"gemma": _replicas(0, 1), "smol": _replicas(2)})
    gemma, smol = pools.pools
    assert pools.for_model("gemma") is gemma and pools.for_model("smol") is smol
    assert pools.for_model(None) is gemma and pools.for_model("default") is gemma
    assert [b.index for b in gemma.backends] == [0, 1] and [b.index for b in smol.backends] == [2]
    assert smol.backends[0].labels == {"model": "smol", "replica": "2"} and smol.labels == {"model": "smol"}


def test_any_other_model_is_a_404_naming_the_served_ones():
    with pytest.raises(ApiError) as caught:
        Pools({"gemma": _replicas(0), "smol": _replicas(1)}).for_model("llama")
    error = caught.value.body()["error"]
    assert caught.value.status == 404
    assert error == {"message": "model 'llama' is not served here (served: 'gemma', 'smol')",
                     "type": "invalid_request_error", "param": "model", "code": "model_not_found"}


def test_a_model_without_replicas_is_refused():
    with pytest.raises(ValueError, match="none for \\['smol'\\]"):
        Pools({"gemma": _replicas(0), "smol": []})
