"""`sweep --backend ray`: every point through Ray Serve's proxy, its metrics summed over the Ray replicas."""

import json

import psutil
import pytest

from paretoserve.cli import main
from paretoserve.sweep.grid import SweepSpec, SweepSpecError
from tests.serve.helpers import wait_gone


def test_the_backend_is_recorded_only_where_it_is_not_the_router():
    assert "backend" not in SweepSpec(max_batch=(1,), threads=(1,)).as_dict()  # older sweeps still resume
    assert SweepSpec(max_batch=(1,), threads=(1,), backend="ray").as_dict()["backend"] == "ray"
    with pytest.raises(SweepSpecError, match="--engine-cmd"):
        SweepSpec(max_batch=(1,), engine_cmd="engine --port {port}", backend="ray")
    with pytest.raises(SweepSpecError, match="--backend must be one of"):
        SweepSpec(max_batch=(1,), backend="k8s")


@pytest.mark.integration
def test_a_ray_point_is_measured_through_rays_proxy_over_both_replicas(tmp_path, capsys):
    pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    out = tmp_path / "sweep"
    assert main(["sweep", "--backend", "ray", "--max-batch", "2", "--replicas", "2", "--threads-per-replica", "1",
                 "--input-tokens", "8", "--output-tokens", "16", "--requests", "16", "--out", str(out)]) == 0
    (record,) = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record.get("reason")
    assert record["completed"] == 16 and record["failed"] == 0
    assert record["max_running"] > 2  # summed over both replicas' metrics: one replica alone runs at most 2
    assert json.loads((out / "sweep.json").read_text())["spec"]["backend"] == "ray"
    left = [p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not wait_gone(left)
