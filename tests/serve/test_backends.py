from paretoserve.serve.backends import Backend, Balancer, StaticReplica


def _backends(n):
    return [Backend(StaticReplica(i, f"http://127.0.0.1:{9000 + i}")) for i in range(n)]


def test_least_outstanding_wins():
    backends = _backends(3)
    backends[0].outstanding, backends[1].outstanding, backends[2].outstanding = 2, 0, 1
    assert Balancer(backends).pick() is backends[1]


def test_ties_go_round_robin():
    backends = _backends(3)
    balancer = Balancer(backends)
    assert {balancer.pick().index for _ in range(3)} == {0, 1, 2}


def test_unhealthy_ejected_and_excluded_backends_are_skipped():
    backends = _backends(3)
    backends[0].replica.healthy = False
    backends[1].eject(60)
    balancer = Balancer(backends)
    assert balancer.pick() is backends[2]
    assert balancer.pick(exclude=[backends[2]]) is None
    assert balancer.healthy_count() == 1


def test_an_ejected_backend_comes_back():
    backends = _backends(1)
    backends[0].eject(0)
    assert Balancer(backends).pick() is backends[0]
