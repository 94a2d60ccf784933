"""`paretoserve advise` on the command line: JSON and tables, and one-line errors naming the flag."""

import json

import pytest

from paretoserve.cli import main

CONTRACT_FIELDS = {"b_opt", "slo", "rejected", "kv_need_bytes", "kv_need_fraction", "freed_bytes", "freed_fraction",
                   "throughput_fraction_at_b_opt", "pareto", "replica_plan", "commands"}


def test_json_has_the_contract_fields(paper_sweeps, capsys):
    assert main(["advise", str(paper_sweeps["replication"]), "--device-memory", "64GiB", "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert CONTRACT_FIELDS <= set(advice)  # noqa: SIM300  (a subset test, not a Yoda condition)
    plan = advice["replica_plan"]
    assert {"replicas", "max_batch", "predicted_or_measured", "expected_throughput", "expected_latency_ms"} <= set(plan)
    assert "--replicas 2 --max-batch 256" in advice["commands"]["serve"]
    assert "--max-num-seqs 256" in advice["commands"]["vllm"]


def test_tables_by_default(paper_sweeps, capsys):
    assert main(["advise", str(paper_sweeps["background"]), "--slo-multiple", "5", "--slo-metric", "itl",
                 "--min-efficiency", "0.2", "--device-memory", "64GiB"]) == 0
    out = capsys.readouterr().out
    assert "B_opt = 96" in out and "Launch commands" in out and "Replica plan" in out


@pytest.mark.parametrize("argv, needle", [
    (["/no/such/sweep"], "no such sweep directory"),
    (["{opt}", "--slo", "latency<=3"], "--slo: cannot read 'latency<=3'"),
    (["{opt}", "--slo", "p90_tpot_ms<=30"], "--slo: the sweep's points have no p90_tpot_ms"),
    (["{opt}", "--slo", "tpot_ms<=1"], "--slo: no measured batch meets"),
    (["{opt}", "--device-memory", "64 gigs"], "--device-memory: cannot read '64 gigs'"),
    (["{opt}", "--min-efficiency", "1.5"], "--min-efficiency must be in [0, 1)"),
    (["{opt}", "--slo-metric", "speed", "--slo-multiple", "3"], "--slo-metric: cannot read 'speed'"),
    (["{opt}", "--hardware", "nope"], "--hardware: unknown hardware 'nope'"),
    (["{opt}", "--hardware", "h100", "--model-geometry", "/no/config.json"], "--model-geometry /no/config.json"),
])
def test_bad_input_is_one_line_naming_the_flag(paper_sweeps, capsys, argv, needle):
    argv = [a.replace("{opt}", str(paper_sweeps["opt-1.3b"])) for a in argv]
    assert main(["advise", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_empty_sweep_says_so(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text(json.dumps({"spec": {}, "environment": {}}))
    failed = {"key": "a", "status": "failed", "config": {"max_batch": 1}}
    (tmp_path / "points.jsonl").write_text(json.dumps(failed) + "\n")
    assert main(["advise", str(tmp_path)]) == 2
    assert "has no finished point" in capsys.readouterr().err
