import json

import pytest

from paretoserve.cli import main

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("flags, message", [
    (["--max-batch", "0,2"], "--max-batch must be a comma-separated list"),
    (["--kv-tokens", "x"], "--kv-tokens must be a comma-separated list"),
    (["--replicas", "1,64", "--threads-per-replica", "1"], "lower --replicas or --threads-per-replica"),
    (["--engine-cmd", "engine --max-num-seqs {max_batch}"], "{port}"),
    (["--concurrency", "0"], "--concurrency"),
])
def test_bad_flags_name_the_flag(tmp_path, capsys, flags, message):
    assert main(["sweep", "--out", str(tmp_path / "s"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_three_point_sweep_on_the_real_engine_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--max-batch", "1,2,4", "--threads-per-replica", "1", "--input-tokens", "16",
            "--output-tokens", "8", "--requests", "4", "--out", str(out)]
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    assert [r["config"]["max_batch"] for r in records] == [1, 2, 4]
    for r in records:
        assert r["status"] == "ok" and r["completed"] == 4 and r["total_output_tokens"] == 32
        assert r["bench_config"]["concurrency"] == r["config"]["max_batch"]  # the cap is saturated
        assert r["bench_config"]["warmup"] == 1
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["spec"]["max_batch"] == [1, 2, 4] and spec["environment"]["cpu_cores"] >= 1
    assert (out / "points.csv").read_text().count("\n") == 4
    capsys.readouterr()
    assert main(args) == 2  # the directory holds a sweep: refuse without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert "3 already done" in capsys.readouterr().err
    assert len((out / "points.jsonl").read_text().splitlines()) == 3  # nothing ran twice
