"""advice.json: written once by every writer, read whole by `report --advice`, its replica plan by `serve --plan`."""

from __future__ import annotations

import json
import re

import pytest

from paretoserve.advise import AdviseConfig, advise
from paretoserve.advise.advice_file import AdviceFileError, PlanSettings, read_advice, read_plan, write_advice
from paretoserve.results.store import SweepStore


def small_sweep(directory):
    """Three single-engine points of a model file not on this machine: enough for the advisor."""
    store = SweepStore(directory)
    store.open({"model": "m.gguf", "ctx_per_seq": 160}, {"cpu_cores": 2, "memory_total_bytes": 8_000_000_000},
               resume=False)
    for batch, throughput in ((1, 80.0), (4, 200.0), (16, 400.0)):
        store.append({"key": f"b{batch}-kvdefault-t2-r1", "status": "ok",
                      "config": {"max_batch": batch, "kv_tokens": None, "threads": 2, "replicas": 1},
                      "output_throughput": throughput, "request_throughput": throughput / 100,
                      "total_token_throughput": 1.5 * throughput, "mean_tpot_ms": 1000.0 * batch / throughput,
                      "completed": 10, "total_input_tokens": 320, "total_output_tokens": 1000})
    return directory


def test_written_advice_reads_back_whole_and_as_a_plan(tmp_path):
    advice = advise(small_sweep(tmp_path / "sweep"), AdviseConfig(slo="tpot_ms<=50"))
    path = write_advice(advice, tmp_path / "advice.json")
    assert read_advice(path) == advice
    plan = advice.replica_plan
    assert read_plan(path) == PlanSettings(replicas=plan.replicas, max_batch=plan.max_batch,
                                           threads_per_replica=plan.threads_per_replica,
                                           ctx_per_seq=advice.commands.ctx_per_seq)
    assert plan.setup().key() == f"b{plan.max_batch}-kvdefault-t{plan.threads_per_replica}-r{plan.replicas}"


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not `paretoserve advise --json` output (the file: Invalid JSON"),
    ('{"b_opt": 4}', "is not `paretoserve advise --json` output (sweep_dir: Field required)"),
])
def test_a_file_that_is_not_advice_names_the_flag(tmp_path, content, message):
    path = tmp_path / "advice.json"
    path.write_text(content)
    with pytest.raises(AdviceFileError, match=rf"^--advice: .*{re.escape(message)}"):
        read_advice(path, "--advice")
    with pytest.raises(AdviceFileError, match="--advice: cannot read"):
        read_advice(tmp_path / "nope.json", "--advice")


def test_plan_file_accepts_advise_output(tmp_path):
    path = tmp_path / "advice.json"
    path.write_text(json.dumps({"b_opt": 16, "replica_plan": {"replicas": 2, "max_batch": 16, "kv_tokens": None,
                                                              "threads_per_replica": 1,
                                                              "predicted_or_measured": "measured"},
                                "commands": {"ctx_per_seq": 160, "serve": "paretoserve serve ..."}}))
    assert read_plan(path).given() == {"replicas": 2, "max_batch": 16, "threads_per_replica": 1, "ctx_per_seq": 160}


def test_plan_file_accepts_a_bare_replica_plan(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"replicas": 3, "max_batch": 4, "kv_tokens": 2048}))
    assert read_plan(path).given() == {"replicas": 3, "max_batch": 4, "kv_tokens": 2048}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"b_opt": 4}', "no replica_plan"),
    ('{"replica_plan": {"replicas": "two"}}', "replica_plan.replicas"),
    ('{"replica_plan": {"replicas": 2, "max_batch": 0}}', "replica_plan.max_batch"),
    ('{"replica_plan": {"replicas": true}}', "replica_plan.replicas"),
])
def test_bad_plan_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "advice.json"
    path.write_text(content)
    with pytest.raises(AdviceFileError, match=f"--plan.*{message}"):
        read_plan(path)


def test_missing_plan_file(tmp_path):
    with pytest.raises(AdviceFileError, match="--plan: cannot read"):
        read_plan(tmp_path / "nope.json")
