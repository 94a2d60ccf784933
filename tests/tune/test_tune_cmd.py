import json

import pytest

from paretoserve.cli import main

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("flags, message", [
    (["--max-batch", "0"], "--max-batch must be an integer in [1, 4096]"),
    (["--duration", "0.5"], "--duration must be in [1, 3600] seconds"),
    (["--min-efficiency", "-1"], "--min-efficiency"),
    (["--slo", "speed<=3"], "--slo"),
])
def test_bad_flags_name_the_flag(tmp_path, capsys, flags, message):
    assert main(["tune", "--out", str(tmp_path / "t"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_tune_searches_verifies_replicas_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", "--out", str(out), "--max-batch", "4", "--duration", "2", "--input-tokens", "8",
            "--output-tokens", "4"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "sweep" / "points.jsonl").read_text().splitlines()]
    assert [(r["config"]["max_batch"], r["config"]["replicas"], r["status"]) for r in records] == \
        [(4, 1, "ok"), (2, 2, "ok")]  # the search's single engine, then 2 replicas sharing its total batch
    advice = json.loads((out / "advice.json").read_text())
    assert advice["b_opt"] >= 1 and advice["replica_plan"]["predicted_or_measured"] == "measured"
    assert {o["replicas"] for o in advice["replica_plan"]["options"]} == {1, 2}
    assert (out / "ray-serve.yaml").is_file() and (out / "ray-serve-llm.yaml").is_file()  # beside advice.json
    html = (out / "report.html").read_text()
    assert "B_opt" in html and html.count("data:image/png;base64,") >= 3
    assert "report " + str(out / "report.html") in printed and "paretoserve serve --plan" in printed

    assert main([*args, "--resume"]) == 0  # everything is measured already: no engine runs again
    assert "0 points run" in capsys.readouterr().out
    assert len((out / "sweep" / "points.jsonl").read_text().splitlines()) == 2

    # the capacity step on the real engine, its traffic a short trace: the runs, the advice, the replay, Ray's
    # autoscaling and the report (a loose SLO, so that a busy machine meets it; never a speed)
    trace = tmp_path / "day.jsonl"
    assert main(["trace", "--out", str(trace), "--low-rate", "1", "--peak-rate", "3", "--duration", "8",
                 "--input-tokens", "8", "--output-tokens", "4"]) == 0
    assert main([*args, "--resume", "--traffic", f"trace:{trace}", "--peak-window", "2", "--replay-speed", "2",
                 "--capacity-slo", "ttft_ms<=60000"]) == 0
    printed = capsys.readouterr().out
    capacity = json.loads((out / "advice.json").read_text())["capacity"]
    assert capacity["capacity_rps"] > 0 and capacity["replicas_at_peak"] >= capacity["replicas_at_mean"] >= 1
    assert capacity["replay"]["sent"] == len(trace.read_text().splitlines()) and capacity["replay"]["failed"] == 0
    assert "capacity: " in printed and (out / "replay.json").is_file()
    runs = [json.loads(line) for line in (out / "capacity" / "points.jsonl").read_text().splitlines()]
    assert {r["config"]["mode"] for r in runs if "request_rate" in r["config"]} == {"trace"}
    assert "autoscaling_config" in (out / "ray-serve.yaml").read_text()
    assert 'id="capacity"' in (out / "report.html").read_text()


def test_an_existing_tune_directory_needs_resume(tmp_path, capsys):
    (tmp_path / "t" / "sweep").mkdir(parents=True)
    (tmp_path / "t" / "sweep" / "sweep.json").write_text('{"spec": {}, "environment": {}}')
    assert main(["tune", "--out", str(tmp_path / "t")]) == 2
    assert "--resume" in capsys.readouterr().err
