"""Workloads users replay, without a server: gamma arrivals, the ramp-up, traces, and every refusal."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest

from paretoserve.bench.config import BenchConfig, BenchConfigError
from paretoserve.bench.loadgen import arrival_offsets, ramp_up, trace_offsets
from paretoserve.bench.trace import load_trace, read_trace
from paretoserve.bench.workload import SYNTHETIC_ID_RANGE, WORDS, WorkloadError
from paretoserve.cli import main
from paretoserve.cli.sweep_cmd import WORKLOAD_FLAG_NAMES
from paretoserve.results.store import StoreError, SweepStore
from paretoserve.sweep.session import workload_record

URL = "http://127.0.0.1:1"  # never reached: every refusal here comes before the first request


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def write_trace(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


# -- gamma arrivals ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [0.25, 1.0, 4.0])
def test_gamma_gaps_have_mean_one_over_rate_and_cv_one_over_sqrt_shape(shape):
    times = list(itertools.islice(arrival_offsets(10.0, "gamma", 5, burstiness=shape), 20_001))
    assert times == list(itertools.islice(arrival_offsets(10.0, "gamma", 5, burstiness=shape), 20_001))  # seeded
    assert times[0] == 0.0
    g = gaps(times)
    mean = statistics.mean(g)
    assert mean == pytest.approx(0.1, rel=0.03)
    assert statistics.stdev(g) / mean == pytest.approx(shape ** -0.5, rel=0.05)


def test_gamma_of_shape_one_is_poisson_and_the_seed_changes_the_draws():
    poisson = list(itertools.islice(arrival_offsets(8.0, "poisson", 2), 500))
    assert list(itertools.islice(arrival_offsets(8.0, "gamma", 2, burstiness=1.0), 500)) == pytest.approx(poisson)
    assert list(itertools.islice(arrival_offsets(8.0, "gamma", 3, burstiness=0.5), 50)) != \
        list(itertools.islice(arrival_offsets(8.0, "gamma", 2, burstiness=0.5), 50))


# -- ramp-up ---------------------------------------------------------------------------------------


def test_a_ramp_from_zero_reaches_the_rate_at_its_end_and_holds_it():
    rate, ramp = 20.0, 10.0
    times = list(itertools.islice(arrival_offsets(rate, "constant", 0, ramp_up_s=ramp), 400))
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:], strict=False))  # monotone
    assert sum(t <= ramp for t in times) == 1 + rate * ramp / 2  # the ramp's integral: rate x ramp / 2
    # During the ramp the rate at t is rate x t / ramp: count the arrivals in one-second windows.
    for second in (2, 5, 8):
        sent = sum(second <= t < second + 1 for t in times)
        assert sent == pytest.approx(rate * (second + 0.5) / ramp, abs=1)
    after = [t for t in times if t > ramp + 1e-9]
    assert gaps(after) == pytest.approx([1 / rate] * (len(after) - 1))  # held at the rate


def test_the_ramp_warps_the_seeded_draws_and_keeps_them():
    steady = list(itertools.islice(arrival_offsets(5.0, "gamma", 4, burstiness=0.5), 300))
    ramped = list(itertools.islice(arrival_offsets(5.0, "gamma", 4, burstiness=0.5, ramp_up_s=30.0), 300))
    assert ramped == [ramp_up(s, 30.0) for s in steady]
    assert ramped == list(itertools.islice(arrival_offsets(5.0, "gamma", 4, burstiness=0.5, ramp_up_s=30.0), 300))
    assert all(b >= a for a, b in zip(ramped, ramped[1:], strict=False))
    # Continuous and smooth where the ramp ends: the steady time T/2 lands at T, with slope 1 on both sides.
    assert ramp_up(15.0, 30.0) == pytest.approx(30.0)
    assert ramp_up(15.0 - 1e-6, 30.0) == pytest.approx(30.0 - 1e-6, abs=1e-9)


# -- traces ----------------------------------------------------------------------------------------


def test_a_trace_plays_relative_to_its_earliest_request_in_time_order(tmp_path):
    write_trace(tmp_path / "t.jsonl", [
        {"timestamp": 27482, "input_length": 30, "output_length": 5, "hash_ids": [46, 47]},
        {"timestamp": 10000, "input_length": 10, "output_length": 2},
        "",
        {"timestamp": 10535, "input_length": 20, "output_length": 3, "extra": "ignored"},
        {"timestamp": 10535, "input_length": 21, "output_length": 4},
    ])
    rows = read_trace(tmp_path / "t.jsonl")
    assert [r.at_s for r in rows] == pytest.approx([0.0, 0.535, 0.535, 17.482])
    assert [(r.input_tokens, r.output_tokens, r.line) for r in rows] == [(10, 2, 2), (20, 3, 4), (21, 4, 5),
                                                                         (30, 5, 1)]
    specs = load_trace(tmp_path / "t.jsonl", seed=1, as_ids=True)
    assert [len(s.prompt) for s in specs] == [s.input_tokens for s in specs] == [10, 20, 21, 30]
    assert [s.output_tokens for s in specs] == [2, 3, 4, 5]
    assert all(SYNTHETIC_ID_RANGE[0] <= t < SYNTHETIC_ID_RANGE[1] for s in specs for t in s.prompt)
    assert trace_offsets(specs) == [r.at_s for r in rows]
    assert specs == load_trace(tmp_path / "t.jsonl", seed=1, as_ids=True) != load_trace(tmp_path / "t.jsonl", 2, True)
    text = load_trace(tmp_path / "t.jsonl", seed=1, as_ids=False)
    assert [len(s.prompt.split()) for s in text] == [10, 20, 21, 30]  # one common word per token
    assert all(word in WORDS for s in text for word in s.prompt.split())


def test_a_trace_in_seconds_names_its_times_timestamp_s(tmp_path):
    write_trace(tmp_path / "s.jsonl", [{"timestamp_s": 100.5, "input_length": 1, "output_length": 1},
                                       {"timestamp_s": 102.0, "input_length": 1, "output_length": 1}])
    assert [r.at_s for r in read_trace(tmp_path / "s.jsonl")] == [0.0, 1.5]


@pytest.mark.parametrize("lines,message", [
    (["{\"timestamp\": 0, \"input_length\": 5"], "line 1 is not JSON"),
    (["[1, 2]"], "line 1 is not a JSON object"),
    ([{"input_length": 5, "output_length": 1}], "line 1 has no 'timestamp': give 'timestamp' (milliseconds) or "
                                                "'timestamp_s' (seconds)"),
    ([{"timestamp": 0, "timestamp_s": 0, "input_length": 5, "output_length": 1}], "line 1 has both"),
    ([{"timestamp": "0", "input_length": 5, "output_length": 1}], "line 1: 'timestamp' must be a number; got '0'"),
    ([{"timestamp": 0, "input_length": 5, "output_length": 1}, {"timestamp": 1, "output_length": 1}],
     "line 2: 'input_length' must be an integer in [1, 1048576]; got none"),
    ([{"timestamp": 0, "text_input": "hi", "output_length": 1}], "text_input is not replayed: use --dataset jsonl"),
    ([{"timestamp": 0, "input_length": 0, "output_length": 1}], "line 1: 'input_length' must be an integer in"),
    ([{"timestamp": 0, "input_length": 5, "output_length": 2.5}], "line 1: 'output_length' must be an integer in "
                                                                  "[1, 1048576]; got 2.5"),
    ([{"timestamp": 0, "input_length": 5, "output_length": True}], "'output_length' must be an integer"),
    ([{"timestamp": 0, "input_length": 5, "output_length": 1}, {"timestamp_s": 1, "input_length": 5,
                                                                "output_length": 1}],
     "line 2 gives 'timestamp_s' but line 1 gave 'timestamp': one time unit per trace"),
    (["", "  "], "no requests"),
])
def test_a_malformed_trace_is_one_error_naming_the_file_and_line(tmp_path, lines, message):
    path = write_trace(tmp_path / "bad.jsonl", lines)
    with pytest.raises(WorkloadError) as caught:
        read_trace(tmp_path / "bad.jsonl")
    assert str(caught.value).startswith(f"--dataset trace:{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_trace_is_one_error(tmp_path):
    with pytest.raises(WorkloadError, match=r"^--dataset trace:.*nope.jsonl: No such file or directory$"):
        read_trace(tmp_path / "nope.jsonl")


# -- refusals --------------------------------------------------------------------------------------


def bench_error(capsys, *args) -> str:
    code = main(["bench", "--url", URL, "--no-progress", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("paretoserve bench: error: "), err
    return err


@pytest.mark.parametrize("args,message", [
    (["--burstiness", "0.5"], "--burstiness applies to --arrival gamma only; got --arrival poisson"),
    (["--mode", "rate", "--rate", "5", "--burstiness", "0.5"], "--burstiness applies to --arrival gamma only"),
    (["--mode", "rate", "--rate", "5", "--arrival", "gamma", "--burstiness", "0"],
     "--burstiness must be in (0, 1000]; got 0.0"),
    (["--mode", "rate", "--rate", "5", "--arrival", "gamma", "--burstiness", "-1"], "--burstiness must be in (0, "),
    (["--mode", "rate", "--rate", "5", "--arrival", "gamma", "--burstiness", "nan"], "--burstiness must be in"),
    (["--arrival", "gamma"], "--arrival applies to --mode rate only; got --mode concurrency"),
    (["--mode", "burst", "--arrival", "constant"], "--arrival applies to --mode rate only; got --mode burst"),
    (["--ramp-up", "10"], "--ramp-up applies to --mode rate only; got --mode concurrency"),
    (["--mode", "burst", "--ramp-up", "10"], "--ramp-up applies to --mode rate only; got --mode burst"),
    (["--mode", "rate", "--rate", "5", "--ramp-up", "0"], "--ramp-up must be in (0, 604800]; got 0.0"),
    (["--mode", "rate", "--rate", "5", "--ramp-up", "30", "--duration", "20"],
     "--ramp-up 30 is longer than --duration 20: the rate would never reach --rate"),
    (["--mode", "trace"], "--mode trace needs --dataset trace:PATH"),
    (["--dataset", "trace:t.jsonl", "--mode", "concurrency"],
     "--dataset trace:PATH replays the trace's own timestamps: leave out --mode concurrency"),
    (["--dataset", "trace:t.jsonl", "--mode", "rate", "--rate", "3"], "leave out --mode rate"),
    (["--dataset", "trace:t.jsonl", "--rate", "3"], "--rate does not apply to --dataset trace:PATH"),
    (["--dataset", "trace:t.jsonl", "--requests", "10"],
     "--requests does not apply to --dataset trace:PATH: each line is sent once (cut the replay short with "
     "--duration S)"),
    (["--dataset", "trace:t.jsonl", "--concurrency", "4"], "--concurrency applies to --mode concurrency only; "
                                                           "got --mode trace"),
    (["--dataset", "trace:t.jsonl", "--arrival", "gamma"], "--arrival applies to --mode rate only; got --mode trace"),
    (["--dataset", "trace:t.jsonl", "--ramp-up", "5"], "--ramp-up applies to --mode rate only; got --mode trace"),
    (["--dataset", "trace:t.jsonl", "--burstiness", "2"], "--burstiness applies to --arrival gamma only"),
    (["--dataset", "trace:t.jsonl", "--input-tokens", "64"], "--input-tokens does not apply to --dataset trace:PATH"),
    (["--dataset", "trace:t.jsonl", "--output-tokens", "8"], "--output-tokens does not apply to --dataset trace:PATH"),
    (["--dataset", "csv:x"], "--dataset must be synthetic, sharegpt:PATH, jsonl:PATH or trace:PATH; got 'csv:x'"),
])
def test_every_refusal_is_one_line_naming_the_flag(capsys, args, message):
    assert message in bench_error(capsys, *args)


def test_the_config_refuses_what_the_cli_would_not_build():
    with pytest.raises(BenchConfigError, match="--arrival gamma applies to --mode rate only; got --mode burst"):
        BenchConfig(url=URL, mode="burst", arrival="gamma")
    cfg = BenchConfig(url=URL, mode="rate", rate=2.0, arrival="gamma")
    assert cfg.gamma_shape == 1.0 and cfg.request_limit == 100
    trace = BenchConfig(url=URL, dataset="trace:t.jsonl", mode="trace")
    assert trace.trace_path == "t.jsonl" and trace.request_limit is None


def test_a_sweep_refuses_a_malformed_trace_before_any_engine_starts(capsys, tmp_path):
    path = write_trace(tmp_path / "bad.jsonl", [{"timestamp": 0, "input_length": 4, "output_length": 1}, "{"])
    code = main(["sweep", "--dataset", f"trace:{path}", "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and f"--dataset trace:{path}: line 2 is not JSON" in err
    assert not (tmp_path / "out").exists()


def test_a_sweeps_context_fits_the_traces_longest_request(capsys, tmp_path):
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 300, "output_length": 100},
                                              {"timestamp": 5, "input_length": 900, "output_length": 200}])
    code = main(["sweep", "--dataset", f"trace:{path}", "--ctx-per-seq", "1000", "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and "--ctx-per-seq 1000 is too short for the workload: the trace's longest request (line 2): " \
                          "input_length 900 + 1 (BOS) + output_length 200 need 1101" in err


# -- sweep.json ------------------------------------------------------------------------------------


def test_sweep_json_keeps_the_new_settings_and_resume_compares_them(tmp_path):
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 4, "output_length": 1}])
    rate = workload_record(BenchConfig(url=URL, mode="rate", rate=4.0, arrival="gamma", burstiness=0.5,
                                       ramp_up_s=20.0))
    assert (rate["arrival"], rate["burstiness"], rate["ramp_up_s"], rate["mode"]) == ("gamma", "0.5", "20.0", "rate")
    assert "trace_sha256" not in rate
    replay = workload_record(BenchConfig(url=URL, dataset=f"trace:{path}", mode="trace"))
    assert replay["dataset"] == f"trace:{path}" and replay["mode"] == "trace" and len(replay["trace_sha256"]) == 16

    store = SweepStore(tmp_path / "sweep")
    store.open({"max_batch": [1], "workload": rate}, {}, resume=False)
    store.open({"max_batch": [1], "workload": rate}, {}, resume=True)  # the same settings resume
    with pytest.raises(StoreError, match=r"--burstiness was 0.5, now 2.0; --ramp-up was 20.0, now unset"):
        store.open({"max_batch": [1], "workload": {**rate, "burstiness": "2.0", "ramp_up_s": "None"}}, {}, True)

    # A sweep written before these settings existed resumes: an absent setting is an unset one.
    old = SweepStore(tmp_path / "old")
    before = {k: v for k, v in rate.items() if k not in ("burstiness", "ramp_up_s")}
    old.open({"workload": before}, {}, resume=False)
    old.open({"workload": {**before, "burstiness": "None", "ramp_up_s": "None"}}, {}, resume=True)

    traced = SweepStore(tmp_path / "traced")
    traced.open({"workload": replay}, {}, resume=False)
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n')
    edited = workload_record(BenchConfig(url=URL, dataset=f"trace:{path}", mode="trace"))
    with pytest.raises(StoreError, match=r"the trace's content \(sha256 of --dataset trace:PATH\) was "):
        traced.open({"workload": edited}, {}, resume=True, flag_names=WORKLOAD_FLAG_NAMES)
