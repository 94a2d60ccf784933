"""Autoscaling from the measured capacity (advise/autoscaling.py): the arithmetic by hand, and both Ray Serve
configs (advise/ray_config.py) loaded with Ray's own schema classes and override rule."""

import json
from pathlib import Path

import pytest
import yaml

from paretoserve.advise import AdviseConfig, advise
from paretoserve.advise.autoscaling import autoscaling
from paretoserve.advise.capacity import CapacityAdvice, capacity_advice
from paretoserve.advise.ray_config import write_ray_configs
from paretoserve.advise.table import load_table
from paretoserve.advise.traffic import Traffic
from paretoserve.results.store import CAPACITY_KIND, SweepStore

SWEEP = Path(__file__).parents[1] / "data" / "embedded-sweep"  # advised: 2 replicas x batch cap 4
SLO = "ttft_ms<=2000"
TRACE = Traffic(mean_rps=1.5, peak_rps=3.0, low_rps=0.4, window_s=60.0, source="trace:t.jsonl")


def rate_record(rate: float, good: int, e2el_ms: float) -> dict:
    """One capacity run at `rate` req/s of 50 requests, `good` of them within the SLO (results/rate_run.py)."""
    return {"key": f"rate-{rate:.4g}", "kind": CAPACITY_KIND, "status": "ok", "config": {"request_rate": rate},
            "slo_good": good, "slo_requests": 50, "completed": 50, "request_throughput": rate,
            "mean_e2el_ms": e2el_ms}


def measured(tmp_path: Path, traffic: Traffic | None = TRACE, knee_e2el_ms: float = 1980.0) -> CapacityAdvice:
    """2 replicas x cap 4 meet 99 % up to 2 req/s (mean latency `knee_e2el_ms` there) and fail at 3 req/s."""
    directory = tmp_path / "capacity"
    store = SweepStore(directory)  # as `paretoserve capacity` keeps its target and SLO
    store.open({"kind": CAPACITY_KIND, "workload": {"slo": SLO}, "capacity": {"attainment": 0.99}}, {}, resume=True)
    for record in (rate_record(1.0, 50, 1500.0), rate_record(2.0, 50, knee_e2el_ms), rate_record(3.0, 30, 9000.0)):
        store.append(record)
    return capacity_advice(directory, replicas=2, max_batch=4, traffic=traffic)


def test_the_arithmetic_by_hand(tmp_path):
    scaling = autoscaling(measured(tmp_path))
    # 2 req/s over 2 replicas = 1 req/s each, x 1.98 s at the knee / 1.1 headroom: 1.8 requests in flight per replica
    assert scaling.target_ongoing_requests == 1.8
    # low 0.4 x 1.1 / 1 -> 1 replica; peak 3.0 x 1.1 / 1 = 3.3 -> 4 replicas
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 4)
    assert (scaling.upscale_delay_s, scaling.downscale_delay_s) == (10.0, 600.0)  # 2 x 1.98 s is under the floor
    assert set(scaling.reasons) == {"target_ongoing_requests", "min_replicas", "max_replicas", "upscale_delay_s",
                                    "downscale_delay_s"}
    assert "1 req/s per replica x 1.98 s mean latency at the knee / (1 + 0.1 headroom) = 1.8" in \
        scaling.reasons["target_ongoing_requests"]
    assert scaling.reasons["min_replicas"].startswith("the traffic's low: 0.4 req/s x (1 + 0.1 headroom) / 1 req/s")
    assert scaling.reasons["max_replicas"].startswith("the traffic's peak: 3 req/s")
    assert scaling.ray_config() == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1.8,
                                    "upscale_delay_s": 10.0, "downscale_delay_s": 600.0}


def test_without_traffic_it_scales_within_the_measured_plan_and_the_target_stays_within_the_cap(tmp_path):
    scaling = autoscaling(measured(tmp_path, traffic=None, knee_e2el_ms=20_000.0))
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 2)
    assert scaling.target_ongoing_requests == 4  # 1 req/s x 20 s = 20 in flight: more than the cap of 4
    assert "capped at the batch cap 4" in scaling.reasons["target_ongoing_requests"]
    assert scaling.upscale_delay_s == 40.0  # two lifetimes of 20 s
    given = autoscaling(measured(tmp_path, traffic=None), upscale_delay_s=2.0, downscale_delay_s=15.0)
    assert (given.upscale_delay_s, given.downscale_delay_s) == (2.0, 15.0)


def test_a_traffic_by_hand_has_no_low_so_the_mean_is_the_floor(tmp_path):
    by_hand = Traffic(mean_rps=1.5, peak_rps=3.0, source="--traffic 1.5 --peak 3")
    scaling = autoscaling(measured(tmp_path, traffic=by_hand))
    assert (scaling.min_replicas, scaling.max_replicas) == (2, 4)  # 1.5 x 1.1 = 1.65 -> 2
    assert "mean (no low given)" in scaling.reasons["min_replicas"]


def test_a_knee_without_latency_targets_the_batch_cap(tmp_path):
    capacity = measured(tmp_path)
    capacity = capacity.model_copy(update={"knee": capacity.knee.model_copy(update={"mean_e2el_ms": None})})
    assert autoscaling(capacity).target_ongoing_requests == 4


schema = pytest.importorskip("ray.serve.schema", reason="the `ray` extra is not installed")


@pytest.fixture
def written(tmp_path):
    """advise's embedded sweep with a measured capacity, both Ray Serve configs written: (advice, directory)."""
    advice = advise(SWEEP, AdviseConfig(slo="tpot_ms<=150"))
    assert (advice.replica_plan.replicas, advice.replica_plan.max_batch) == (2, 4)
    advice = advice.model_copy(update={"capacity": measured(tmp_path)})
    write_ray_configs(advice, load_table(SWEEP), tmp_path / "ray")
    return advice, tmp_path / "ray"


def test_ray_serve_yaml_autoscales_our_engine_as_rays_schema_and_override_take_it(written):
    from ray.serve._private.application_state import override_deployment_info
    from ray.serve._private.deployment_info import DeploymentInfo

    from paretoserve.serve.ray_replica import DEPLOYMENT_NAME, build

    advice, directory = written
    text = (directory / "ray-serve.yaml").read_text()
    config = schema.ServeDeploySchema.model_validate(yaml.safe_load(text))
    (app,) = config.applications
    (deployment,) = app.deployments
    assert deployment.num_replicas == "auto" and deployment.max_ongoing_requests == 4  # the plan's batch cap
    assert deployment.autoscaling_config == autoscaling(advice.capacity).ray_config()
    assert "#   target_ongoing_requests 1.8: Little's law at the capacity" in text
    assert "#   downscale_delay_s 600: Ray's default" in text
    # What `serve run ray-serve.yaml` makes of the builder's deployment (num_replicas 2 from its args): the
    # YAML's options over the code's, where `auto` leaves no fixed number beside the autoscaling.
    built = build(app.args)._bound_deployment
    assert built.num_replicas == 2
    info = DeploymentInfo(deployment_config=built._deployment_config, replica_config=built._replica_config,
                          start_time_ms=0, deployer_job_id="test")
    scaled = override_deployment_info({DEPLOYMENT_NAME: info}, app)[DEPLOYMENT_NAME].deployment_config
    assert scaled.num_replicas is None and scaled.max_ongoing_requests == 4
    got = scaled.autoscaling_config
    assert (got.min_replicas, got.max_replicas, got.target_ongoing_requests) == (1, 4, 1.8)
    assert (got.upscale_delay_s, got.downscale_delay_s) == (10.0, 600.0)


def test_ray_serve_llm_yaml_autoscales_the_llm_config(written):
    from tests.advise.test_ray_config import llm_config_class

    advice, directory = written
    config = schema.ServeDeploySchema.model_validate(yaml.safe_load((directory / "ray-serve-llm.yaml").read_text()))
    (raw,) = config.applications[0].args["llm_configs"]
    llm = llm_config_class().model_validate(raw)  # Ray's own validation, deployment_config included
    deployment = llm.deployment_config
    assert deployment["num_replicas"] == "auto" and deployment["max_ongoing_requests"] == 4
    assert deployment["autoscaling_config"] == autoscaling(advice.capacity).ray_config()
    assert json.loads(advice.model_dump_json())["capacity"]["capacity_rps"] == 2.0  # advice.json holds the inputs
