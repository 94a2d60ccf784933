"""`capacity --replay`: the flags of the search and those a trace sets are refused by name before anything is
sent; the replay's report is printed and kept in --out/replay.json."""

import json

import pytest

from paretoserve.cli import main
from paretoserve.sweep.replay import ReplayReport, Window

BASE = ["capacity", "--url", "http://127.0.0.1:1", "--slo", "ttft_ms<=1000"]


def never(*args, **kwargs):
    raise AssertionError("a replay or a search was started")


@pytest.mark.parametrize(("extra", "message"), [
    (["--start-rate", "2"], "--start-rate does not apply to --replay"),
    (["--max-runs", "3"], "--max-runs does not apply to --replay"),
    (["--overload", "0"], "--overload does not apply to --replay"),
    (["--concurrency", "4"], "--concurrency does not apply to --replay"),
    (["--requests", "5"], "--requests does not apply to --replay"),
    (["--duration", "5"], "--duration does not apply to --replay"),
    (["--input-tokens", "5"], "--input-tokens does not apply to --replay"),
    (["--resume"], "--resume does not apply to --replay"),
    (["--dataset", "trace:x.jsonl"], "--dataset does not apply to --replay"),
])
def test_replay_refuses_the_searchs_flags_by_name(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr("paretoserve.cli.capacity_cmd.replay_trace", never)
    assert main([*BASE, "--replay", "t.jsonl", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra", [["--replay-speed", "2"], ["--window", "5"]])
def test_replay_flags_without_replay_are_refused(tmp_path, capsys, monkeypatch, extra):
    monkeypatch.setattr("paretoserve.cli.capacity_cmd.CapacitySession", never)
    assert main([*BASE, "--out", str(tmp_path / "o"), *extra]) == 2
    assert f"{extra[0]} applies to --replay PATH only" in capsys.readouterr().err


def test_bad_speed_is_named_before_anything_is_sent(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp_s": 0, "input_length": 4, "output_length": 4}\n'
                     '{"timestamp_s": 1, "input_length": 4, "output_length": 4}\n')
    assert main([*BASE, "--replay", str(trace), "--replay-speed", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--replay-speed must be in (0, 1000]" in capsys.readouterr().err


def test_the_report_is_printed_and_kept(tmp_path, capsys, monkeypatch):
    window = Window(0.0, 5.0, 5, 5, 0, 5, 100.0, 200.0, 900.0, 1000.0)
    report = ReplayReport(trace="t.jsonl", speed=1.0, trace_rps=1.0, slo="ttft_ms<=1000", target=0.99, sent=5,
                          completed=5, failed=0, good=5, run_limits_met=True, wall_s=6.0, windows=[window])
    seen = {}

    def fake(bench, trace, out, **kw):
        seen.update(bench=bench, trace=trace, **kw)
        return report

    monkeypatch.setattr("paretoserve.cli.capacity_cmd.replay_trace", fake)
    out = tmp_path / "o"
    assert main([*BASE, "--replay", "t.jsonl", "--out", str(out), "--attainment", "0.9", "--window", "5"]) == 0
    text = capsys.readouterr().out
    assert "100.0% within ttft_ms<=1000 (target 99.0%), 0 failed: goal met" in text and "replay.json" in text
    assert seen["speed"] == 1.0 and seen["window_s"] == 5.0 and seen["attainment"] == 0.9
    assert json.loads((out / "replay.json").read_text())["goal_met"] is True
