"""advise's Ray Serve config (advise/ray_config.py): ray-serve.yaml for our engine and a ray.serve.llm config for
vLLM, both loaded with Ray's own schema classes, and the builder they name accepting what they give it."""

import shutil
from pathlib import Path

import pytest
import yaml

from paretoserve.advise import AdviseConfig, advise
from paretoserve.advise.ray_config import (
    kv_bytes_per_replica,
    serve_config,
    write_ray_configs_models,
)
from paretoserve.advise.table import load_table
from paretoserve.cli import main

schema = pytest.importorskip("ray.serve.schema", reason="the `ray` extra is not installed")

from ray.serve._private.build_app import build_app  # noqa: E402

from paretoserve.serve.ray_ingress import INGRESS_NAME  # noqa: E402
from paretoserve.serve.ray_replica import DEPLOYMENT_NAME, RayPlan, build  # noqa: E402

SWEEP = Path(__file__).parents[1] / "data" / "embedded-sweep"


def llm_config_class():
    """Ray's LLMConfig: ray.serve.llm's (it imports vLLM or SGLang), else the class it subclasses, which does not."""
    try:
        from ray.serve.llm import LLMConfig
    except ImportError:
        from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    return LLMConfig


def load(path: Path):
    text = path.read_text()
    assert text.startswith("# paretoserve advice for ")
    return schema.ServeDeploySchema.model_validate(yaml.safe_load(text))


def test_ray_serve_yaml_runs_the_plan_with_our_engine(tmp_path, capsys):
    sweep = shutil.copytree(SWEEP, tmp_path / "sweep")
    assert main(["advise", str(sweep), "--slo", "tpot_ms<=150"]) == 0
    assert "Ray Serve config: " + str(sweep / "ray-serve.yaml") in capsys.readouterr().out
    config = load(sweep / "ray-serve.yaml")
    assert config.http_options.host == "127.0.0.1" and config.proxy_location == "HeadOnly"
    (app,) = config.applications
    assert app.import_path == "paretoserve.serve.ray_replica:build" and app.route_prefix == "/"
    # the advice by hand (test_embedded.py): two replicas of batch cap 4, one core each, 33 tokens per sequence
    assert app.args == {"replicas": 2, "max_batch": 4, "threads_per_replica": 1, "ctx_per_seq": 33,
                        "kv_tokens": 132, "model": "default", "engine": "embedded", "max_queued_requests": 1024}
    (deployment,) = app.deployments
    assert deployment.name == DEPLOYMENT_NAME
    assert (deployment.num_replicas, deployment.max_ongoing_requests, deployment.max_queued_requests) == (2, 4, 1024)
    assert deployment.ray_actor_options.num_cpus == 1
    built = build(app.args)._bound_deployment  # the builder takes its args and makes the same deployment
    assert (built.name, built.num_replicas, built.max_ongoing_requests) == (DEPLOYMENT_NAME, 2, 4)
    assert RayPlan.from_args(app.args).kv_tokens == 132


def test_advise_json_stays_json_and_ray_out_puts_the_files_elsewhere(tmp_path, capsys):
    sweep = shutil.copytree(SWEEP, tmp_path / "sweep")
    assert main(["advise", str(sweep), "--json", "--ray-out", str(tmp_path / "ray")]) == 0
    out, err = capsys.readouterr()
    assert out.lstrip().startswith("{") and "Ray Serve config" in err
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["ray-serve-llm.yaml", "ray-serve.yaml"]
    assert not (sweep / "ray-serve.yaml").exists()


def test_the_llm_config_sizes_each_vllm_replica_of_a_shared_gpu(paper_sweeps, tmp_path):
    sweep = shutil.copytree(paper_sweeps["replication"], tmp_path / "replication")
    assert main(["advise", str(sweep), "--device-memory", "64GiB", "--json"]) == 0
    advice = advise(sweep, AdviseConfig(device_memory="64GiB"))
    plan = advice.replica_plan
    config = load(sweep / "ray-serve-llm.yaml")
    (app,) = config.applications
    assert app.import_path == "ray.serve.llm:build_openai_app"
    (raw,) = app.args["llm_configs"]
    llm = llm_config_class().model_validate(raw)  # Ray's own validation, deployment_config included
    assert (plan.replicas, plan.max_batch) == (2, 256)  # 2 x 256 beats 1 x 768 in the paper
    kwargs = llm.engine_kwargs
    assert kwargs["max_num_seqs"] == 256 and kwargs["max_model_len"] == advice.commands.ctx_per_seq
    assert kwargs["gpu_memory_utilization"] == 0.45  # each of 2 replicas: half of 0.9
    kv, per_token = kwargs["kv_cache_memory_bytes"], advice.memory.kv_bytes_per_token
    assert kv == kv_bytes_per_replica(advice) and kv % (16 * per_token) == 0  # whole vLLM blocks
    assert kv >= advice.memory.kv_need_bytes * plan.max_batch / advice.b_opt
    assert llm.placement_group_config == {"bundles": [{"CPU": 1, "GPU": 0.5}], "strategy": "PACK"}
    assert llm.deployment_config["num_replicas"] == 2 and llm.deployment_config["max_ongoing_requests"] == 256
    assert llm.experimental_configs["stream_batching_interval_ms"] == 0
    assert llm.model_loading_config.model_id == "opt-1.3b"
    ours = load(sweep / "ray-serve.yaml").applications[0].args  # our engine preset: the same KV, in tokens
    assert ours["engine"] == "vllm" and ours["kv_tokens"] * per_token == kv and ours["num_gpus"] == 0.5


def test_several_models_are_one_application_in_ray_serve_yaml_which_the_builder_takes(tmp_path):
    advice, table = advise(SWEEP, AdviseConfig(slo="tpot_ms<=150")), load_table(SWEEP)
    other = tmp_path / "other-model.gguf"  # a second model the builder only names (nothing loads it)
    other.write_bytes(b"GGUF" + bytes(60))
    pairs = [(advice, table), (advice, table.model_copy(update={"model": str(other)}))]
    write_ray_configs_models(pairs, tmp_path / "ray")
    text = (tmp_path / "ray" / "ray-serve.yaml").read_text()
    assert text.startswith("# paretoserve advice for 2 models on one device")
    config = schema.ServeDeploySchema.model_validate(yaml.safe_load(text))
    (app,) = config.applications
    assert app.import_path == "paretoserve.serve.ray_replica:build" and app.route_prefix == "/"
    one = serve_config(advice, table)["applications"][0]  # each model's plan as it would be alone (2 x 1 core)
    assert app.args["models"] == [one["args"], {**one["args"], "model": str(other)}]
    names = [d.name for d in app.deployments]
    assert names == [f"{DEPLOYMENT_NAME}-0", f"{DEPLOYMENT_NAME}-1", INGRESS_NAME]
    for deployment in app.deployments[:2]:
        assert (deployment.num_replicas, deployment.max_ongoing_requests, deployment.max_queued_requests) == \
            (2, 4, 1024) and deployment.ray_actor_options.num_cpus == 1
    ingress = app.deployments[2]
    assert ingress.max_ongoing_requests == 2 * (2 * 4 + 1024) and ingress.ray_actor_options.num_cpus == 0
    built = build_app(build(app.args), name="paretoserve")  # the YAML's deployments are the builder's, by name
    assert sorted(d.name for d in built.deployments) == sorted(names)
    assert built.ingress_deployment_name == INGRESS_NAME


def test_several_models_llm_configs_share_one_gpu(paper_sweeps, tmp_path):
    config = AdviseConfig(device_memory="64GiB")
    pairs = [(advise(paper_sweeps[name], config), load_table(paper_sweeps[name]))
             for name in ("replication", "opt-2.7b")]
    replicas = sum(advice.replica_plan.replicas for advice, _ in pairs)
    write_ray_configs_models(pairs, tmp_path / "ray")
    (app,) = load(tmp_path / "ray" / "ray-serve-llm.yaml").applications
    assert app.import_path == "ray.serve.llm:build_openai_app"
    llms = [llm_config_class().model_validate(raw) for raw in app.args["llm_configs"]]  # Ray's own validation
    assert [llm.model_loading_config.model_id for llm in llms] == ["opt-1.3b", "opt-2.7b"]  # what routes
    for llm, (advice, _) in zip(llms, pairs, strict=True):
        assert llm.engine_kwargs["max_num_seqs"] == advice.replica_plan.max_batch
        assert llm.engine_kwargs["kv_cache_memory_bytes"] == kv_bytes_per_replica(advice)
        assert llm.deployment_config["num_replicas"] == advice.replica_plan.replicas
        # every replica of both models shares the one GPU and its memory
        assert llm.placement_group_config["bundles"] == [{"CPU": 1, "GPU": int(1000 / replicas) / 1000}]
        assert llm.engine_kwargs["gpu_memory_utilization"] == int(900 / replicas) / 1000
    ours = load(tmp_path / "ray" / "ray-serve.yaml").applications[0].args["models"]
    assert [m["engine"] for m in ours] == ["vllm", "vllm"] and {m["num_gpus"] for m in ours} == {
        int(1000 / replicas) / 1000}
    # each model's replicas together reserve no more than their equal shares: never past 0.9 of the GPU in all
    assert sum(m["mem_fraction"] for m in ours) <= 0.9
    # a placement's memory map gives each model its own share, split among its replicas
    write_ray_configs_models(pairs, tmp_path / "placed", [0.6, 0.3])
    (app,) = load(tmp_path / "placed" / "ray-serve-llm.yaml").applications
    per_replica = [int(1000 * share / advice.replica_plan.replicas) / 1000
                   for share, (advice, _) in zip((0.6, 0.3), pairs, strict=True)]
    assert [raw["engine_kwargs"]["gpu_memory_utilization"] for raw in app.args["llm_configs"]] == per_replica
    ours = load(tmp_path / "placed" / "ray-serve.yaml").applications[0].args["models"]
    assert [m["mem_fraction"] for m in ours] == [0.6, 0.3]



def test_each_model_autoscales_on_its_own_and_the_ingress_holds_their_most(tmp_path):
    from tests.advise.test_autoscaling import measured

    advice = advise(SWEEP, AdviseConfig(slo="tpot_ms<=150"))
    advice = advice.model_copy(update={"capacity": measured(tmp_path)})  # 2 x cap 4 meet 2 req/s
    table, other = load_table(SWEEP), tmp_path / "other-model.gguf"
    other.write_bytes(b"GGUF" + bytes(60))
    write_ray_configs_models([(advice, table), (advice, table.model_copy(update={"model": str(other)}))],
                             tmp_path / "ray")
    text = (tmp_path / "ray" / "ray-serve.yaml").read_text()
    assert "#   model 2 (" + str(other) + ")" in text and "#     target_ongoing_requests 1.8: " in text
    (app,) = schema.ServeDeploySchema.model_validate(yaml.safe_load(text)).applications
    most = [d.autoscaling_config["max_replicas"] for d in app.deployments[:2]]
    assert [d.num_replicas for d in app.deployments[:2]] == ["auto", "auto"]
    assert app.deployments[2].max_ongoing_requests == sum(n * 4 + 1024 for n in most)
