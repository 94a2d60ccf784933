"""The load generator against the fake server: token counts, load patterns, timings, failures.

Where requests must overlap, the fake server holds them until they do (`together`) rather than giving them time
to; timings are checked as orderings and lower bounds, which hold however busy the machine. How close the sends
come to their planned times, and the measured latencies to the scripted ones, is benchmarks/loadgen_timing.py's."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics

import pytest

from paretoserve.bench.config import TokenRange
from paretoserve.bench.loadgen import ClientPool, LoadGenerator, LoadPattern, RequestBuilder, arrival_offsets
from paretoserve.bench.summary import latency_fields
from paretoserve.bench.trace import load_trace
from paretoserve.bench.workload import synthetic

from .fake_server import FakeServer
from .one_shot_server import OneShotServer

pytestmark = pytest.mark.integration


def drive(server: FakeServer, pattern: LoadPattern, specs, endpoint: str = "completions"):
    async def go():
        pool = ClientPool(server.url, 64, 30.0)
        try:
            builder = RequestBuilder(endpoint, None, ignore_eos=True, temperature=0.0)
            return await LoadGenerator(pool, builder, specs, pattern).run()
        finally:
            await pool.aclose()

    return asyncio.run(go())


def specs(n=8, n_in=64, n_out=4, as_ids=True):
    return synthetic(n, TokenRange(n_in, n_in), TokenRange(n_out, n_out), seed=1, as_ids=as_ids)


def max_in_flight(records) -> int:
    events = sorted([(r.sent_s, 1) for r in records] + [(r.end_s, -1) for r in records], key=lambda e: (e[0], e[1]))
    return max(itertools.accumulate(step for _, step in events))


def test_exact_token_counts_with_token_id_prompts():
    with FakeServer() as server:
        result = drive(server, LoadPattern("concurrency", 4, requests=8), specs(8, 64, 16))
    assert all(len(body["prompt"]) == 64 and body["max_tokens"] == 16 and body["ignore_eos"] is True
               and body["stream"] is True and body["stream_options"] == {"include_usage": True}
               for body in server.state.bodies)
    assert [(r.input_tokens, r.output_tokens, r.usage_reported) for r in result.records] == [(64, 16, True)] * 8
    assert all(len(r.token_s) == 16 for r in result.records)


@pytest.mark.parametrize("n", [3, 20])
def test_closed_loop_keeps_exactly_n_in_flight(n):
    with FakeServer(ttft_s=0.05, itl_s=0.005, together=n) as server:  # the first n answer once all n arrived
        result = drive(server, LoadPattern("concurrency", n, requests=4 * n), specs(4 * n))
    assert len(result.records) == 4 * n and all(r.ok for r in result.records)
    assert server.state.max_running == n
    assert max_in_flight(result.records) == n
    # Every request after the first n goes out once an earlier one ended, never before.
    ends = sorted(r.end_s for r in result.records)
    for k, r in enumerate(sorted(result.records, key=lambda r: r.sent_s)[n:], start=1):
        assert sum(e <= r.sent_s for e in ends) >= k


def test_the_pool_never_holds_more_requests_than_connections():
    async def go(url):
        pool = ClientPool(url, 4, 30.0)
        try:
            builder = RequestBuilder("completions", None, ignore_eos=True, temperature=0.0)
            return await LoadGenerator(pool, builder, specs(12), LoadPattern("burst", requests=12)).run()
        finally:
            await pool.aclose()

    with FakeServer(ttft_s=0.05, itl_s=0.005, together=4) as server:
        result = asyncio.run(go(server.url))
    assert all(r.ok for r in result.records)
    assert server.state.max_running == 4


def test_poisson_arrivals_are_seeded_and_have_the_asked_mean_rate():
    first = list(itertools.islice(arrival_offsets(50.0, "poisson", 7), 5000))
    assert first == list(itertools.islice(arrival_offsets(50.0, "poisson", 7), 5000))
    assert first != list(itertools.islice(arrival_offsets(50.0, "poisson", 8), 5000))
    assert first[0] == 0.0
    gaps = [b - a for a, b in zip(first, first[1:], strict=False)]
    assert statistics.mean(gaps) == pytest.approx(1 / 50.0, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50.0, rel=0.1)  # exponential: sd = mean
    assert list(itertools.islice(arrival_offsets(4.0, "constant", 0), 4)) == [0.0, 0.25, 0.5, 0.75]


def test_rate_mode_sends_at_the_seeded_times():
    pattern = LoadPattern("rate", rate=40.0, arrival="poisson", seed=3, requests=20)
    with FakeServer() as server:
        runs = [drive(server, pattern, specs(20, n_out=2)) for _ in range(2)]
    planned = list(itertools.islice(arrival_offsets(40.0, "poisson", 3), 20))
    for result in runs:
        assert [r.intended_s for r in result.records] == planned
        assert all(r.ok and r.sent_s >= r.intended_s for r in result.records)  # never early


def test_a_trace_sends_its_requests_at_the_planned_times(tmp_path):
    offsets_ms = [0, 40, 40, 150, 300, 310, 500]
    rows = [{"timestamp": 1_000 + t, "input_length": 8 + i, "output_length": 2} for i, t in enumerate(offsets_ms)]
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in reversed(rows)))  # out of order on disk
    trace = load_trace(path, seed=0, as_ids=True)
    with FakeServer() as server:
        result = drive(server, LoadPattern("trace"), trace)
    planned = [t / 1000 for t in offsets_ms]
    assert [r.intended_s for r in result.records] == pytest.approx(planned)
    assert all(r.ok for r in result.records) and len(result.records) == len(rows)  # each line once, no cycling
    assert all(r.sent_s >= r.intended_s for r in result.records)  # never early
    assert len(server.state.arrivals) == len(rows)
    assert sorted(len(body["prompt"]) for body in server.state.bodies) == [8 + i for i in range(len(rows))]


def test_a_ramped_gamma_run_sends_at_the_planned_times():
    pattern = LoadPattern("rate", rate=60.0, arrival="gamma", seed=1, requests=30, burstiness=0.5, ramp_up_s=0.5)
    with FakeServer() as server:
        result = drive(server, pattern, specs(30, n_out=1))
    planned = list(itertools.islice(arrival_offsets(60.0, "gamma", 1, 0.5, 0.5), 30))
    assert [r.intended_s for r in result.records] == planned
    assert all(r.ok for r in result.records) and min(r.sent_s - r.intended_s for r in result.records) >= 0


def test_duration_bounds_an_open_loop_run():
    with FakeServer() as server:
        result = drive(server, LoadPattern("rate", rate=100.0, arrival="constant", duration_s=0.3), specs(4, n_out=1))
    assert len(result.records) == 30  # t = 0, 0.01, ..., 0.29


def test_burst_sends_everything_at_t0():
    with FakeServer(together=16) as server:  # no answer before all 16 arrived: the client must not wait for one
        result = drive(server, LoadPattern("burst", requests=16), specs(16, n_out=1))
    assert all(r.intended_s == 0.0 and r.ok for r in result.records)
    assert server.state.max_running == 16


def test_latencies_match_the_servers_scripted_delays():
    with FakeServer(ttft_s=0.08, itl_s=0.02) as server:
        result = drive(server, LoadPattern("concurrency", 2, requests=6), specs(6, n_out=6))
    f = latency_fields(result.records)
    # A client sees the server's delays or longer, never shorter, however busy the machine: lower bounds only.
    # The arithmetic is checked exactly in test_summary.py; how close a quiet machine comes to the scripted
    # delays is benchmarks/loadgen_timing.py's.
    assert f["median_ttft_ms"] >= 80 and f["p99_ttft_ms"] >= 80
    assert f["median_e2el_ms"] >= 80 + 5 * 20
    assert f["median_tpot_ms"] > 0 and f["median_itl_ms"] > 0


def test_failures_are_recorded_with_the_servers_message():
    with FakeServer(ttft_s=0.05, fail_every=4) as server:
        result = drive(server, LoadPattern("concurrency", 1, requests=12), specs(12, n_out=2))
    failed = [r for r in result.records if not r.ok]
    assert len(failed) == 3
    assert all(r.error == "HTTP 500: scripted failure" and r.end_s is not None for r in failed)
    ok = [r for r in result.records if r.ok]
    assert latency_fields(result.records) == latency_fields(ok)  # the failures' instant answers count nowhere
    assert latency_fields(result.records)["mean_ttft_ms"] >= 40


def test_without_usage_output_tokens_are_counted_as_chunks_and_chat_deltas_parse():
    with FakeServer(usage=False) as server:
        result = drive(server, LoadPattern("concurrency", 2, requests=4), specs(4, n_out=5, as_ids=False), "chat")
    assert server.state.bodies[0]["messages"][0]["role"] == "user"
    assert [(r.output_tokens, r.usage_reported) for r in result.records] == [(5, False)] * 4


def test_an_unreachable_server_fails_every_request_without_raising():
    from paretoserve.engine_process import free_port

    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    result = drive(Nowhere(), LoadPattern("concurrency", 2, requests=3), specs(3))
    assert all(r.error and r.error.startswith("ClientConnectorError") for r in result.records)


def test_touch_opens_a_connection_on_every_client_before_the_run():
    async def go(url):
        pool = ClientPool(url, 20, 5.0)
        try:
            await pool.touch()
        finally:
            await pool.aclose()

    with FakeServer() as server:
        asyncio.run(go(server.url))
    assert server.state.arrivals == []  # GET /v1/models only: no generation request was sent


@pytest.mark.parametrize("concurrency", [1, 8])
def test_a_pooled_connection_the_server_dropped_is_retried_once_on_a_new_one(concurrency):
    with OneShotServer() as server:
        result = drive(server, LoadPattern("concurrency", concurrency=concurrency, requests=24), specs(n_out=4))
    assert [r.error for r in result.records if r.error] == []  # llama-server lost a third of these
    assert len(server.served) == 24 and all(r.output_tokens == 4 for r in result.records)
    retries = [r.connection_retries for r in result.records]
    # Once one was dropped, the pool stops reusing connections: only requests already on a pooled one are resent.
    assert max(retries) == 1 and 1 <= sum(retries) <= concurrency
