from types import SimpleNamespace

from paretoserve.advise.replicas import ReplicaPlan
from paretoserve.tune.plan import replica_point


def advice(replicas=1, max_batch=64, threads=0, fit_memory=None, b_opt_cap=64):
    """An advice with only the fields replica_point reads (the plan a real ReplicaPlan, unvalidated)."""
    plan = ReplicaPlan.model_construct(replicas=replicas, max_batch=max_batch, threads_per_replica=threads,
                                       replicas_fit_memory=fit_memory)
    return SimpleNamespace(replica_plan=plan, b_opt_max_batch=b_opt_cap)


def test_an_advised_plan_of_several_replicas_is_measured_as_advised():
    point = replica_point(advice(replicas=3, max_batch=16, threads=1), cores=4, max_replicas=8)
    assert (point.replicas, point.max_batch, point.threads) == (3, 16, 1)


def test_a_single_engine_plan_is_checked_against_the_cores_split_at_the_same_total_batch():
    point = replica_point(advice(b_opt_cap=33), cores=2, max_replicas=8)
    assert (point.replicas, point.max_batch, point.threads) == (2, 17, 1)  # 2 x 17 >= 33: no fewer slots
    point = replica_point(advice(b_opt_cap=64, fit_memory=3), cores=8, max_replicas=8)
    assert (point.replicas, point.max_batch, point.threads) == (3, 22, 2)


def test_nothing_to_verify_when_only_one_replica_fits():
    assert replica_point(advice(), cores=1, max_replicas=8) is None
    assert replica_point(advice(fit_memory=1), cores=4, max_replicas=8) is None
    assert replica_point(advice(), cores=4, max_replicas=1) is None
