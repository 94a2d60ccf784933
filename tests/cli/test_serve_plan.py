"""`serve --plan advice.json`: the file's replica plan, a flag given on the command line winning over it."""

from __future__ import annotations

import json

import pytest

from paretoserve.cli import build_parser, main
from paretoserve.cli.serve_cmd import plan_from_args

TEMPLATE = "engine --port {port}"  # an --engine-cmd: no preset to check or model to prepare


def plan_of(*argv: str):
    args = ["serve", "--engine-cmd", TEMPLATE, *argv]
    return plan_from_args(build_parser(args).parse_args(args))


def test_flags_win_over_the_plan_file(tmp_path):
    path = tmp_path / "advice.json"
    path.write_text(json.dumps({"replica_plan": {"replicas": 2, "max_batch": 16, "threads_per_replica": 1},
                                "commands": {"ctx_per_seq": 160}}))
    plan = plan_of("--plan", str(path))
    assert (plan.replicas, plan.max_batch, plan.threads_per_replica) == (2, 16, 1)
    plan = plan_of("--plan", str(path), "--max-batch", "4", "--threads-per-replica", "0")
    assert (plan.replicas, plan.max_batch, plan.threads_per_replica) == (2, 4, 0)


@pytest.mark.parametrize("content, message", [
    ('{"replica_plan": {"replicas": 2, "max_batch": 0}}', "--plan: replica_plan.max_batch must be a positive integer"),
    ('{"b_opt": 4}', "has no replica_plan object with a 'replicas' field"),
])
def test_a_bad_plan_file_is_one_line_naming_plan(tmp_path, capsys, content, message):
    path = tmp_path / "advice.json"
    path.write_text(content)
    assert main(["serve", "--plan", str(path), "--engine-cmd", TEMPLATE]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
