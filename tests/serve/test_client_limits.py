"""The per-client limiter on a clock the test moves: the in-flight cap, the token bucket, what it forgets; the flags'
checks."""

import pytest

from paretoserve.serve.client_limits import PRUNE_AT_LEAST, ClientLimiter
from paretoserve.serve.config import PlanError, RouterConfig


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_cap_counts_each_client_apart_and_release_frees_a_place():
    limiter = ClientLimiter(max_concurrent=2, retry_after_s=1)
    assert limiter.admit("a") is None and limiter.admit("a") is None
    refusal = limiter.admit("a")
    assert refusal is not None and refusal.limit == "concurrency" and refusal.retry_after_s == 1
    assert "--max-concurrent-per-client" in refusal.message
    assert limiter.admit("b") is None  # another client is not held back by a's requests
    limiter.release("a")
    assert limiter.admit("a") is None
    for client in ("a", "a", "b"):
        limiter.release(client)
    assert limiter.in_flight("a") == limiter.in_flight("b") == 0
    assert limiter.tracked() == 0  # nothing in flight and no bucket: nothing kept


def test_the_bucket_allows_a_burst_of_one_second_then_refills_at_the_rate():
    clock = Clock()
    limiter = ClientLimiter(max_rate=2.0, clock=clock)
    assert [limiter.admit("a") for _ in range(2)] == [None, None]
    refusal = limiter.admit("a")
    assert refusal is not None and refusal.limit == "rate" and refusal.retry_after_s == 1  # 0.5 s, rounded up
    clock.now_s += 0.5
    assert limiter.admit("a") is None and limiter.admit("a") is not None
    assert limiter.admit("b") is None


def test_a_slow_rate_says_how_long_to_wait():
    clock = Clock()
    limiter = ClientLimiter(max_rate=0.1, clock=clock)  # a burst of 1, then one every 10 s
    assert limiter.admit("a") is None
    clock.now_s += 2.5
    refusal = limiter.admit("a")
    assert refusal is not None and refusal.retry_after_s == 8  # 7.5 s left, rounded up
    assert "--max-rate-per-client 0.1" in refusal.message


def test_a_refused_request_takes_no_place_and_no_token():
    clock = Clock()
    limiter = ClientLimiter(max_concurrent=1, max_rate=1.0, clock=clock)
    assert limiter.admit("a") is None
    clock.now_s += 1.0
    assert limiter.admit("a").limit == "concurrency"  # type: ignore[union-attr]
    limiter.release("a")
    assert limiter.admit("a") is None  # the token refilled in that second is still there
    assert limiter.in_flight("a") == 1


def test_idle_clients_are_forgotten_once_their_number_doubles():
    clock = Clock()
    limiter = ClientLimiter(max_rate=1.0, clock=clock)
    for n in range(PRUNE_AT_LEAST):
        assert limiter.admit(f"address 10.0.{n // 256}.{n % 256}") is None
        limiter.release(f"address 10.0.{n // 256}.{n % 256}")
    assert limiter.tracked() == PRUNE_AT_LEAST  # their buckets are refilling: forgetting them would reset them
    clock.now_s += 1.0
    assert limiter.admit("a") is None
    assert limiter.tracked() == 1


@pytest.mark.parametrize("field, value, message", [
    ("max_concurrent_per_client", -1, r"--max-concurrent-per-client must be an integer in \[0, 1048576\]"),
    ("max_concurrent_per_client", 1.5, r"--max-concurrent-per-client must be an integer in \[0, 1048576\]"),
    ("max_rate_per_client", -0.5, r"--max-rate-per-client must be in \[0, 1000000\] requests/s"),
    ("max_rate_per_client", float("nan"), r"--max-rate-per-client must be in \[0, 1000000\] requests/s"),
])
def test_the_flags_are_checked_with_their_range(field, value, message):
    with pytest.raises(PlanError, match=message):
        RouterConfig(**{field: value})
