import pytest

from paretoserve.results.setup import ReplicaSetup
from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.replica_server import serve_argv
from paretoserve.sweep.grid import SweepSpec


def test_embedded_command_carries_the_engine_knobs():
    cmd = ServeConfig(replicas=2, max_batch=8, kv_tokens=4096, ctx_per_seq=256, model="/m.gguf").command(1, 9001, 1)
    assert cmd[1:4] == ["-m", "paretoserve", "engine"]
    text = " ".join(cmd)
    for part in ("--port 9001", "--model /m.gguf", "--max-batch 8", "--threads 1", "--kv-tokens 4096",
                 "--ctx-per-seq 256"):
        assert part in text


def test_repack_reaches_every_replica_and_the_serve_child():
    plan = ServeConfig(replicas=2, max_batch=8, model="/m.gguf", repack="off")
    assert " --repack off" in " ".join(plan.command(0, 9001, 1))
    assert " --repack off" in " ".join(serve_argv(plan, 9000))
    assert "--repack" not in " ".join(ServeConfig(model="/m.gguf").command(0, 9001, 1))  # auto: the engine decides
    assert SweepSpec(model="/m.gguf", max_batch=(4,), repack="no-amx").plan(ReplicaSetup(4, None, 1)).repack == "no-amx"
    with pytest.raises(PlanError, match="--repack off applies to the llama.cpp presets only"):
        ServeConfig(engine_cmd="llama-server --port {port}", repack="off")


def test_template_gets_each_replica_its_share_of_memory():
    plan = ServeConfig(replicas=3, max_batch=16, model="m", mem_fraction=0.9,
                       engine_cmd="vllm serve {model} --port {port} --max-num-seqs {max_batch} "
                                  "--gpu-memory-utilization {mem_fraction} --seed {replica}")
    assert plan.mem_fraction_per_replica == 0.3
    assert plan.command(2, 7000, 4) == ["vllm", "serve", "m", "--port", "7000", "--max-num-seqs", "16",
                                        "--gpu-memory-utilization", "0.3", "--seed", "2"]


def test_memory_shares_never_add_up_to_more_than_the_total():
    plan = ServeConfig(replicas=7, mem_fraction=0.9)
    assert plan.mem_fraction_per_replica * 7 <= 0.9


@pytest.mark.parametrize("kwargs, flag", [
    ({"replicas": 0}, "--replicas"),
    ({"max_batch": 0}, "--max-batch"),
    ({"kv_tokens": 3}, "--kv-tokens"),
    ({"threads_per_replica": -1}, "--threads-per-replica"),
    ({"mem_fraction": 1.5}, "--mem-fraction"),
    ({"health_path": "health"}, "--health-path"),
    ({"engine_cmd": "engine --port {port} {nope}"}, "--engine-cmd"),
    ({"engine_cmd": "engine --port 8000"}, "{port}"),
    ({"engine_cmd": "engine --port {port} --kv {kv_tokens}"}, "--kv-tokens"),
])
def test_bad_plans_name_the_flag(kwargs, flag):
    with pytest.raises(PlanError, match=flag.replace("{", r"\{").replace("}", r"\}")):
        ServeConfig(**kwargs)


def test_router_config_checks_its_flags():
    with pytest.raises(PlanError, match="--port"):
        RouterConfig(port=70000)
    with pytest.raises(PlanError, match="--max-body-bytes"):
        RouterConfig(max_body_bytes=10)
