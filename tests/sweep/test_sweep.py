import contextlib
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from paretoserve.limits import IntRange, parse_int_list
from paretoserve.results.setup import ReplicaSetup
from paretoserve.results.store import StoreError, SweepStore
from paretoserve.sweep.engine_runs import EngineRuns
from paretoserve.sweep.grid import SweepSpec, SweepSpecError
from paretoserve.sweep.runner import run_points
from tests.serve.helpers import wait_gone
from tests.waiting import HANG_S, wait_until

pytestmark = pytest.mark.integration

FAKE = Path(__file__).parents[1] / "fakes" / "fake_engine.py"


def fake_cmd(extra: str = "") -> str:
    return f"{sys.executable} {FAKE} --port {{port}} --max-batch {{max_batch}} {extra}"


def measure_fake(point: ReplicaSetup, base_url: str, pids: tuple[int, ...]) -> dict:
    """Reads the fake engine's metrics, proving the point's engine was up with the point's config."""
    text = httpx.get(base_url + "/metrics", timeout=HANG_S).text
    fields = dict(line.split() for line in text.splitlines())
    return {"output_throughput": float(fields["fake_max_batch"]) * 10, "engine_pid": pids[0]}


def test_parse_int_list_names_the_flag():
    assert parse_int_list("--max-batch", "1,2,4,2", IntRange(1, 64), SweepSpecError) == (1, 2, 4)
    for bad in ("", "0,1", "a,b", "65", "1,,2", "1,2,"):
        with pytest.raises(SweepSpecError, match="--max-batch"):
            parse_int_list("--max-batch", bad, IntRange(1, 64), SweepSpecError)


def test_grid_and_embedded_command():
    spec = SweepSpec(max_batch=(1, 8), kv_tokens=(None, 4096), threads=(2,), ctx_per_seq=256)
    points = spec.points()
    assert [p.key() for p in points] == ["b1-kvdefault-t2-r1", "b8-kvdefault-t2-r1", "b1-kv4096-t2-r1",
                                         "b8-kv4096-t2-r1"]
    cmd = spec.command(points[3], 9000)
    assert cmd[cmd.index("--port") + 1] == "9000" and cmd[cmd.index("--kv-tokens") + 1] == "4096"
    assert cmd[cmd.index("--ctx-per-seq") + 1] == "256" and "--kv-tokens" not in spec.command(points[0], 9000)


def test_template_placeholders_are_checked():
    spec = SweepSpec(engine_cmd="vllm serve {model} --port {port} --max-num-seqs {max_batch}", max_batch=(4,))
    assert spec.command(spec.points()[0], 8001)[-4:] == ["--port", "8001", "--max-num-seqs", "4"]
    with pytest.raises(SweepSpecError, match="unknown or malformed placeholder"):
        SweepSpec(engine_cmd="x --port {port} --gpu {gpu}")
    with pytest.raises(SweepSpecError, match=r"\{port\}"):
        SweepSpec(engine_cmd="x --max-num-seqs {max_batch}")
    with pytest.raises(SweepSpecError, match="--kv-tokens"):
        SweepSpec(engine_cmd="x --port {port} -c {kv_tokens}")


def test_store_refuses_other_sweep_and_resumes(tmp_path):
    store = SweepStore(tmp_path / "s")
    assert store.open({"a": 1}, {"cpu": "x"}, resume=False) == set()
    store.append({"key": "p1", "status": "ok", "config": {"max_batch": 1}})
    store.append({"key": "p2", "status": "failed", "reason": "boom", "config": {"max_batch": 2}})
    with store.points_path.open("a") as f:
        f.write('{"key": "p3", "sta')  # a crash in the middle of a write
    with pytest.raises(StoreError, match="--resume"):
        SweepStore(tmp_path / "s").open({"a": 1}, {}, resume=False)
    with pytest.raises(StoreError, match="--a was 1, now 2"):
        SweepStore(tmp_path / "s").open({"a": 2}, {}, resume=True)
    again = SweepStore(tmp_path / "s")
    assert again.open({"a": 1}, {}, resume=True) == {"p1"}  # failed points run again
    again.append({"key": "p2", "status": "ok", "config": {"max_batch": 2}})
    assert {r["key"]: r["status"] for r in again.records()} == {"p1": "ok", "p2": "ok"}
    assert all(json.loads(line) for line in again.points_path.read_text().splitlines())


def test_csv_export_flattens_config(tmp_path):
    store = SweepStore(tmp_path)
    store.open({}, {}, resume=False)
    store.append({"key": "k", "status": "ok", "config": {"max_batch": 4}, "output_throughput": 1.5, "series": [1]})
    text = store.export_csv(tmp_path / "points.csv").read_text().splitlines()
    assert text[0] == "config.max_batch,key,status,output_throughput" and text[1] == "4,k,ok,1.5"


def test_points_run_record_and_stop_their_engines(tmp_path):
    spec = SweepSpec(engine_cmd=fake_cmd(), max_batch=(2, 4))
    store = SweepStore(tmp_path)
    store.open(spec.as_dict(), {}, resume=False)
    records = run_points(spec, spec.points(), EngineRuns(measure_fake), store)
    assert [r["output_throughput"] for r in records] == [20.0, 40.0]
    assert all(r["status"] == "ok" for r in store.records())
    for r in records:  # the engine of each point is gone once its point is recorded
        with pytest.raises(ProcessLookupError):
            os.kill(r["engine_pid"], 0)


def test_repeats_interleave_round_by_round_and_a_resume_runs_only_what_is_missing(tmp_path):
    order: list[int] = []

    def measure(point: ReplicaSetup, base_url: str, pids: tuple[int, ...]) -> dict:
        order.append(point.max_batch)
        return {"output_throughput": 10.0 * point.max_batch + len(order), "completed": 1}

    spec = SweepSpec(engine_cmd=fake_cmd(), max_batch=(2, 4), repeats=2)
    store = SweepStore(tmp_path)
    store.open(spec.as_dict(), {}, resume=False)
    records = run_points(spec, spec.points()[:1], EngineRuns(measure), store)  # as if stopped after point 2's two runs
    assert order == [2, 2] and records[0]["repeats"] == 2
    spec3 = SweepSpec(engine_cmd=fake_cmd(), max_batch=(2, 4), repeats=3)
    order.clear()
    records = run_points(spec3, spec3.points(), EngineRuns(measure), store)
    assert order == [4, 4, 2, 4]  # round by round: point 2 already had its first two
    by_key = {r["key"]: r for r in records}
    b2 = by_key["b2-kvdefault-t0-r1"]
    assert b2["repeats"] == 3 and b2["completed"] == 3
    assert [s["output_throughput"] for s in b2["repeat_summaries"]] == [21.0, 22.0, 23.0]
    assert b2["ci95"]["output_throughput"][0] < b2["output_throughput"] < b2["ci95"]["output_throughput"][1]
    assert len(SweepStore(tmp_path).records()) == 2  # the last record of each key replaces the earlier ones


def measure_until_crash(point: ReplicaSetup, base_url: str, pids: tuple[int, ...]) -> dict:
    """Sends the request on which the fake engine exits, and returns once it no longer answers."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(base_url + "/v1/completions", json={"prompt": "x"}, timeout=HANG_S)
    wait_until(lambda: not _answers(base_url), "the engine gone")
    return {"output_throughput": 1.0}


def _answers(base_url: str) -> bool:
    try:
        httpx.get(base_url + "/health", timeout=HANG_S)
    except httpx.HTTPError:
        return False
    return True


# Only the engine that never becomes healthy needs a short --health-timeout; the others end by their exit, which
# no health timeout may overtake however slowly the machine starts them.
@pytest.mark.parametrize("extra, health_timeout_s, measure, reason", [
    ("--never-healthy", 2, measure_fake, "not healthy"),
    ("--never-healthy --crash-after 0.3", HANG_S, measure_fake, "exited with status 3 before it was healthy"),
    ("--crash-on-request", HANG_S, measure_until_crash, "exited with status 3 during the run"),
])
def test_failed_point_is_recorded_with_reason(tmp_path, extra, health_timeout_s, measure, reason):
    spec = SweepSpec(engine_cmd=fake_cmd(extra), max_batch=(1,), health_timeout_s=health_timeout_s)
    store = SweepStore(tmp_path)
    store.open(spec.as_dict(), {}, resume=False)
    record = run_point(spec, measure, store)
    assert record["status"] == "failed" and reason in record["reason"]


def test_a_replica_point_runs_behind_the_router_and_leaves_no_process(tmp_path):
    spec = SweepSpec(engine_cmd=fake_cmd("--replica {replica}"), max_batch=(2,), threads=(1,), replicas=(2,))
    store = SweepStore(tmp_path / "s")
    store.open(spec.as_dict(), {}, resume=False)
    seen = {}

    def measure(point, base_url, pids):
        seen.update(pids=pids, health=httpx.get(base_url + "/health", timeout=HANG_S).json(),
                    models=httpx.get(base_url + "/v1/models", timeout=HANG_S).status_code)
        return {"output_throughput": 1.0}

    record = run_point(spec, measure, store)
    assert record["status"] == "ok" and record["config"]["replicas"] == 2
    assert seen["health"]["healthy_replicas"] == 2 and seen["models"] == 200
    assert len(seen["pids"]) == 3  # the router and its two replicas, for RSS and CPU sampling
    assert wait_gone(seen["pids"]) == []


def test_a_replica_plan_needing_more_cores_than_exist_is_refused_before_any_engine_starts():
    with pytest.raises(SweepSpecError, match="lower --replicas"):
        SweepSpec(engine_cmd=fake_cmd(), max_batch=(2,), threads=(1,), replicas=(len(os.sched_getaffinity(0)) + 1,))


def run_point(spec: SweepSpec, measure, store: SweepStore) -> dict:
    """One run of the spec's first point on a real (fake) engine, logged where the sweep logs it."""
    point = spec.points()[0]
    return EngineRuns(measure).run(spec, point, store.logs_dir / f"{point.key()}.log")
