"""The replay that checks a plan: the timeline's arithmetic on made-up request records, `replay_trace` on a
simulated endpoint, and one short replay through the real embedded engine (structure only, never a speed)."""

import json
from pathlib import Path

import pytest

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.diurnal import Diurnal, write_diurnal
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.slo import parse_slo
from paretoserve.bench.trace import read_trace
from paretoserve.cli import main
from paretoserve.sweep.replay import ReplayError, replay_report, replay_trace, timeline

SLO = parse_slo("ttft_ms<=500,e2el_ms<=2000")


def record(i: int, at: float, ttft: float = 0.1, e2el: float = 1.0, error: str | None = None) -> RequestRecord:
    """A request planned at `at` s: its first token `ttft` s and its end `e2el` s later (or failed)."""
    if error:
        return RequestRecord(i, at, 8, 16, sent_s=at, end_s=at + 0.01, error=error)
    return RequestRecord(i, at, 8, 16, sent_s=at, token_s=[at + ttft, at + e2el], end_s=at + e2el, output_tokens=2)


def test_each_request_counts_in_the_window_of_its_planned_send():
    records = [record(i, float(i)) for i in range(20)]  # one a second over 0..19 s
    records[3] = record(3, 3.0, ttft=0.9)  # late first token: completed, not good
    records[12] = record(12, 12.0, error="HTTP 503 (Retry-After 1): busy")
    report = replay_report({"requests": [r.to_dict() for r in records], "duration": 21.0}, SLO.per_request,
                           trace="t.jsonl", speed=1.0, trace_rps=1.0, target=0.9, window_s=5.0, slo=str(SLO))
    w = report.windows
    assert [x.start_s for x in w] == [0, 5, 10, 15] and [x.length_s for x in w] == [5, 5, 5, 4]  # ends at 19 s
    assert [x.sent for x in w] == [5, 5, 5, 5] and [x.failed for x in w] == [0, 0, 1, 0]
    assert [x.good for x in w] == [4, 5, 4, 5] and w[0].attainment == 0.8 and w[3].offered_rps == 1.25
    assert w[0].p50_ttft_ms == pytest.approx(100) and w[0].p99_ttft_ms == pytest.approx(900 - 0.04 * 800)
    assert w[2].completed == 4 and w[2].p99_e2el_ms == pytest.approx(1000)
    assert sum(x.sent for x in w) == report.sent == 20 and report.completed + report.failed == 20
    assert report.good == 18 and report.attainment == 0.9 and report.failed == 1 and not report.goal_met
    assert report.first_error.startswith("HTTP 503")
    text = "\n".join(report.lines())
    assert "90.0% within ttft_ms<=500,e2el_ms<=2000 (target 90.0%), 1 failed: goal NOT met" in text
    data = report.to_dict()
    assert data["goal_met"] is False and data["windows"][0]["attainment"] == 0.8 and len(data["windows"]) == 4


def test_the_default_window_is_a_tenth_and_a_last_sliver_joins_the_one_before():
    records = [record(i, i * 0.5) for i in range(41)]  # 0..20 s
    assert [w.length_s for w in timeline(records, [True] * 41, None)] == [2.0] * 10
    sliver = [*records, record(41, 20.1)]
    windows = timeline(sliver, [True] * 42, 5.0)
    assert [w.length_s for w in windows] == [5, 5, 5, pytest.approx(5.1)] and windows[-1].sent == 12
    empty = timeline([], [], None)
    assert len(empty) == 1 and empty[0].sent == 0 and empty[0].attainment is None and empty[0].p99_ttft_ms is None


class Played:
    """A simulated endpoint: every request of the replayed trace answered at its own time, the slow ones late."""

    def __init__(self, slow_from_s: float = float("inf")) -> None:
        self.asked: list[BenchConfig] = []
        self.slow_from_s = slow_from_s

    def run(self, bench: BenchConfig) -> dict:
        self.asked.append(bench)
        rows = read_trace(Path(bench.trace_path or ""))
        records = [record(i, row.at_s, ttft=0.9 if row.at_s >= self.slow_from_s else 0.1)
                   for i, row in enumerate(rows)]
        return {"requests": [r.to_dict() for r in records], "duration": rows[-1].at_s + 1, "slo_met": True,
                "warnings": []}


def bench(**kw) -> BenchConfig:
    return BenchConfig(url="http://127.0.0.1:1", duration_s=15, warmup=1, **{"slo": SLO, **kw})


def diurnal(tmp_path) -> Path:
    path = tmp_path / "diurnal.jsonl"
    write_diurnal(Diurnal(low_rps=1, peak_rps=4, duration_s=40, bursts=1, input_tokens=TokenRange(8, 8),
                          output_tokens=TokenRange(4, 4)), path)
    return path


def test_a_replay_plays_the_whole_trace_scaled_by_its_speed_and_judges_it(tmp_path):
    trace, runs, heard = diurnal(tmp_path), Played(), []
    report = replay_trace(bench(), trace, tmp_path / "out", speed=2.0, window_s=4.0, runs=runs, echo=heard.append)
    asked = runs.asked[0]
    assert asked.mode == "trace" and asked.duration_s is None and asked.requests is None and asked.warmup == 1
    scaled = tmp_path / "out" / "traces" / "replay-x2.jsonl"
    assert asked.trace_path == str(scaled)
    rows, played = read_trace(trace), read_trace(scaled)
    assert [r.at_s / 2 for r in rows] == pytest.approx([r.at_s for r in played])
    assert report.sent == len(rows) and report.good == report.sent and report.goal_met
    assert report.mean_rps == pytest.approx(2 * (len(rows) - 1) / rows[-1].at_s)
    assert len(report.windows) == 5 and sum(w.sent for w in report.windows) == report.sent  # 20 s in 4 s windows
    assert heard[0].startswith(f"replay: {len(rows)} requests over ") and "at 2x" in heard[0]
    assert "goal met" in report.lines()[1]


def test_a_replay_that_falls_behind_misses_the_goal_in_the_windows_that_fell_behind(tmp_path):
    report = replay_trace(bench(), diurnal(tmp_path), tmp_path / "out", window_s=10.0, runs=Played(slow_from_s=30))
    assert not report.goal_met and report.failed == 0
    assert [w.attainment for w in report.windows[:3]] == [1.0, 1.0, 1.0] and report.windows[3].attainment == 0.0
    assert not (tmp_path / "out" / "traces").exists()  # at speed 1 the trace plays as it is


@pytest.mark.parametrize(("kw", "flag"), [
    ({"speed": 0.0}, "--replay-speed"), ({"speed": float("inf")}, "--replay-speed"), ({"window_s": -1.0}, "--window"),
    ({"attainment": 1.5}, "--attainment"), ({"slo": None}, "--slo"), ({"slo": parse_slo("p99_ttft_ms<=9")}, "--slo"),
])
def test_bad_settings_name_their_flag_before_anything_is_sent(tmp_path, kw, flag):
    runs = Played()
    b = bench(slo=kw.pop("slo")) if "slo" in kw else bench()
    with pytest.raises(ReplayError, match=flag):
        replay_trace(b, diurnal(tmp_path), tmp_path / "out", runs=runs, **kw)
    assert runs.asked == []


def test_an_unreadable_trace_names_replay(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp_s": 0, "input_length": 4, "output_length": 4}\n')
    with pytest.raises(ReplayError, match=f"--replay {bad}: 1 requests"):
        replay_trace(bench(), bad, tmp_path, runs=Played())


@pytest.mark.integration
def test_a_short_diurnal_trace_replayed_through_the_engine(start_engine, tmp_path, capsys):
    url = start_engine("--max-batch", "2", "--ctx-per-seq", "64", "--threads", "1")
    trace = tmp_path / "diurnal.jsonl"
    assert main(["trace", "--out", str(trace), "--low-rate", "0.5", "--peak-rate", "2", "--duration", "6",
                 "--bursts", "1", "--input-tokens", "8", "--output-tokens", "4", "--seed", "3"]) == 0
    rows = read_trace(trace)
    status = main(["capacity", "--url", url, "--replay", str(trace), "--replay-speed", "2", "--window", "1",
                   "--slo", "ttft_ms<=60000", "--out", str(tmp_path / "out"), "--json"])
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after the trace command's line
    kept = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert printed == kept and kept["sent"] == len(rows) and kept["failed"] == 0 and kept["completed"] == len(rows)
    assert sum(w["sent"] for w in kept["windows"]) == len(rows) == sum(w["completed"] for w in kept["windows"])
    assert status == (0 if kept["goal_met"] else 1) and kept["good"] <= kept["completed"]
