"""Several models on one machine: `serve --model A --model B`'s flags, each model's cores, one supervisor per model
with replicas numbered across models, and the router over them (fake engines)."""

import os

import pytest

from paretoserve.cli import build_parser, main
from paretoserve.cli.serve_cmd import plans_from_args
from paretoserve.serve.config import PlanError, ServeConfig
from paretoserve.serve.fleet import Fleet, ServedModel, place, served_models
from tests.serve.helpers import fake_cmd, get, post, running_router, wait_gone
from tests.waiting import HANG_S

FAST = dict(health_interval_s=0.1, restart_backoff_s=(0.2, 1.0), stop_grace_s=3.0)
TEMPLATE = "engine --port {port}"  # an --engine-cmd: no preset to check or model to prepare


def _plans(*argv: str) -> list[ServeConfig]:
    args = ["serve", "--engine-cmd", TEMPLATE, *argv]
    return plans_from_args(build_parser(args).parse_args(args))


def test_each_flag_gives_one_value_for_every_model_or_one_each():
    a, b = _plans("--model", "a", "--model", "b", "--replicas", "2,1", "--max-batch", "8", "--kv-tokens", "512,256")
    assert (a.model, a.replicas, a.max_batch, a.kv_tokens) == ("a", 2, 8, 512)
    assert (b.model, b.replicas, b.max_batch, b.kv_tokens) == ("b", 1, 8, 256)
    (one,) = _plans("--replicas", "2")  # one model, as always
    assert (one.model, one.replicas) == ("default", 2)


def test_each_model_takes_its_own_plan_file_in_order(tmp_path):
    files = []
    for name, replicas in (("a.json", 2), ("b.json", 1)):
        files.append(tmp_path / name)
        files[-1].write_text(f'{{"replica_plan": {{"replicas": {replicas}, "max_batch": {4 * replicas}}}}}')
    a, b = _plans("--model", "a", "--plan", str(files[0]), "--model", "b", "--plan", str(files[1]),
                  "--max-batch", "2,3")
    assert (a.replicas, a.max_batch, b.replicas, b.max_batch) == (2, 2, 1, 3)  # a flag wins over each file


@pytest.mark.parametrize("argv, message", [
    (["--model", "a", "--model", "b", "--replicas", "1,2,3"], "--replicas: 3 values for 2 model(s)"),
    (["--model", "a", "--model", "b", "--plan", "p.json"], "--plan: 1 plan file(s) for 2 model(s)"),
    (["--model", "a", "--model", "b"], "--engine-cmd serves one model"),
])
def test_mistakes_are_one_line_errors(capsys, argv, message):
    assert main(["serve", "--engine-cmd", TEMPLATE, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_value_that_is_no_integer_is_argparses_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--replicas", "two"])
    assert exited.value.code == 2
    assert "--replicas: must be an integer, or a comma list of one per --model; got 'two'" in capsys.readouterr().err


def _gguf(path) -> str:
    path.write_bytes(b"GGUF" + bytes(28))
    return str(path)


def test_models_are_named_as_their_engine_names_them_and_given_once(tmp_path):
    a, b = _gguf(tmp_path / "alpha.gguf"), _gguf(tmp_path / "beta.gguf")
    named = served_models([ServeConfig(model=a), ServeConfig(model=b)])
    assert [m.name for m in named] == ["alpha", "beta"]
    # vLLM and SGLang answer to the model directory as given; a GGUF's export to the GGUF's name
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "paretoserve-export.json").write_text('{"name": "gemma-export"}')
    gpu = served_models([ServeConfig(model=str(tmp_path / "export"), engine="vllm"),
                         ServeConfig(model="/models/qwen", engine="sglang")])
    assert [m.name for m in gpu] == ["gemma-export", "/models/qwen"]
    with pytest.raises(PlanError, match="--model: alpha given twice"):
        served_models([ServeConfig(model=a), ServeConfig(model=a, replicas=2)])


def test_each_model_gets_cores_of_its_own(cores):
    cores(4)
    plans = [ServeConfig(replicas=1, engine_cmd=TEMPLATE), ServeConfig(replicas=3, engine_cmd=TEMPLATE)]
    placed = place(plans, [0, 1, 2, 3])  # threads 0: the cores shared evenly among all 4 replicas
    assert [(p.threads_per_replica, c) for p, c in placed] == [(1, [0]), (1, [1, 2, 3])]
    two = [ServeConfig(replicas=1, threads_per_replica=2, engine_cmd=TEMPLATE), plans[1]]
    with pytest.raises(PlanError, match=r"the models need 5 cores \(1 x 2 \+ 3 x 1 replicas x threads\) but this "
                                        r"process may use 4"):
        place(two, [0, 1, 2, 3])
    unpinned = [ServeConfig(replicas=2, threads_per_replica=2, pin=False, engine_cmd=TEMPLATE)] * 2
    assert [c for _, c in place(unpinned, [0, 1])] == [None, None]  # sharing cores: the user's choice


@pytest.mark.integration
def test_a_fleet_runs_every_model_pinned_apart_and_the_router_reaches_each(tmp_path):
    pin = len(os.sched_getaffinity(0)) >= 2  # a core for each model; else they share
    plan = ServeConfig(replicas=1, threads_per_replica=1, engine_cmd=fake_cmd(), pin=pin, **FAST)
    models = [ServedModel("alpha", plan), ServedModel("beta", plan)]
    with Fleet(models, log_dir=tmp_path) as fleet:
        fleet.wait_healthy(HANG_S)
        pids = fleet.pids
        replicas = fleet.replicas
        with running_router(replicas) as url:
            answers = [post(url + "/v1/completions", json={"model": name, "prompt": "x", "max_tokens": 1})
                       for name in ("beta", "alpha")]
            health = get(url + "/health").json()
    assert {name: [r.index for r in group] for name, group in replicas.items()} == {"alpha": [0], "beta": [1]}
    assert [a.headers["x-paretoserve-replica"] for a in answers] == ["1", "0"]
    assert [(r["model"], r["state"]) for r in health["replicas"]] == [("alpha", "healthy"), ("beta", "healthy")]
    if plan.pin:
        assert replicas["alpha"][0].cores != replicas["beta"][0].cores
    assert sorted(p.name for p in tmp_path.glob("replica-*.log")) == ["replica-0.log", "replica-1.log"]
    assert wait_gone(pids) == []
