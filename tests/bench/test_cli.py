"""`paretoserve bench` end to end against the fake server, and its one-line flag errors."""

from __future__ import annotations

import json

import pytest

from paretoserve.cli import main
from tests.waiting import HANG_S

from .fake_server import FakeServer

pytestmark = pytest.mark.integration

VLLM_FIELDS = ["duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
               "output_throughput", "total_token_throughput", "request_goodput",
               *[f"{s}_{m}" for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
                 for s in ("mean", "median", "p90", "p99")]]
OUR_FIELDS = ["mean_running", "max_running", "kv_peak_fraction", "preemptions", "rss_peak_bytes",
              "device_memory_peak_bytes", "energy_j", "energy_per_output_token_j", "energy_source",
              "client_overhead_p50_ms", "schedule_lag_p99_ms", "steady_state", "warnings", "samples"]


# Limits only a hang breaks: this machine may be busy, and the test checks the SLO's arithmetic, not the speed.
SLO = f"tpot_ms<={HANG_S * 1000:.0f},p99_ttft_ms<={HANG_S * 1000:.0f}"


@pytest.fixture(scope="module")
def server():
    with FakeServer(ttft_s=0.02, itl_s=0.005, max_batch=4) as s:
        yield s


def bench(capsys, *args) -> tuple[int, str, str]:
    code = main(["bench", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_result_has_the_vllm_and_our_fields(server, capsys, tmp_path):
    out_path = tmp_path / "result.json"
    code, out, err = bench(capsys, "--url", server.url, "--requests", "12", "--concurrency", "4", "--input-tokens",
                           "32", "--output-tokens", "8", "--slo", SLO, "--json",
                           "--out", str(out_path))
    assert code == 0 and err == ""
    result = json.loads(out)
    assert json.loads(out_path.read_text()) == result
    for name in VLLM_FIELDS + OUR_FIELDS:
        assert name in result, name
    assert (result["completed"], result["total_input_tokens"], result["total_output_tokens"]) == (12, 384, 96)
    assert result["request_goodput"] == pytest.approx(result["request_throughput"])
    assert result["slo_attainment"] == 1.0 and result["slo_met"] is True
    assert result["energy_source"] == "estimated" and result["energy_j"] > 0  # this machine has no counter
    assert result["steady_state"]["slots"] == 4 and result["steady_state"]["completed"] >= 1
    assert result["prompts"] == "token ids" and "requests" not in result


def test_repeats_report_means_with_intervals(server, capsys):
    code, out, _ = bench(capsys, "--url", server.url, "--requests", "6", "--concurrency", "2", "--input-tokens", "8",
                         "--output-tokens", "4", "--repeats", "3", "--json")
    result = json.loads(out)
    assert code == 0 and result["repeats"] == 3 and result["completed"] == 18
    assert len(result["repeat_summaries"]) == 3
    low, high = result["ci95"]["output_throughput"]
    assert low <= result["output_throughput"] <= high
    code, out, _ = bench(capsys, "--url", server.url, "--requests", "4", "--output-tokens", "3", "--repeats", "2")
    assert code == 0 and "mean of 2 runs" in out


def test_one_run_has_no_interval(server, capsys):
    code, out, _ = bench(capsys, "--url", server.url, "--requests", "4", "--output-tokens", "3", "--json")
    result = json.loads(out)
    assert result["repeats"] == 1 and "ci95" not in result


def test_the_table_and_save_requests(server, capsys, tmp_path):
    out_path = tmp_path / "r.json"
    code, out, err = bench(capsys, "--url", server.url, "--requests", "4", "--output-tokens", "3", "--energy", "none",
                           "--out", str(out_path), "--save-requests")
    assert code == 0
    assert "median TTFT" in out and "energy [none]" in out and f"result written to {out_path}" in out
    result = json.loads(out_path.read_text())
    assert result["energy_source"] == "none" and result["energy_j"] is None
    assert len(result["requests"]) == 4 and len(result["requests"][0]["token_s"]) == 3


def test_burst_against_a_server_with_a_batch_cap_has_a_steady_state(server, capsys):
    code, out, _ = bench(capsys, "--url", server.url, "--mode", "burst", "--requests", "12", "--output-tokens", "4",
                         "--warmup", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["completed"] == 12 and result["request_rate"] == "inf"
    assert result["steady_state"]["slots"] == 4  # paretoserve_max_batch from /metrics


def test_rate_mode_below_saturation_says_why_there_is_no_steady_state(capsys):
    with FakeServer(max_batch=64) as srv:
        code, out, _ = bench(capsys, "--url", srv.url, "--mode", "rate", "--rate", "50", "--arrival", "constant",
                             "--duration", "0.2", "--output-tokens", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["completed"] == 10
    assert "not saturated" in result["steady_state"]["reason"]


def test_a_trace_replays_with_the_traces_token_counts(server, capsys, tmp_path):
    path = tmp_path / "mooncake.jsonl"
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": n, "output_length": 3, "hash_ids": [1]}) + "\n"
                            for t, n in ((0, 16), (100, 24), (250, 32))))
    code, out, _ = bench(capsys, "--url", server.url, "--dataset", f"trace:{path}", "--json", "--save-requests")
    result = json.loads(out)
    assert code == 0 and result["mode"] == "trace" and result["request_rate"] is None
    assert result["completed"] == 3 and result["total_input_tokens"] == 16 + 24 + 32
    assert result["prompts"] == "token ids" and result["config"]["dataset"] == f"trace:{path}"
    assert [r["intended_s"] for r in result["requests"]] == pytest.approx([0.0, 0.1, 0.25])
    code, out, _ = bench(capsys, "--url", server.url, "--dataset", f"trace:{path}")
    assert code == 0 and "(trace mooncake.jsonl)" in " ".join(out.split())


def test_a_ramped_gamma_rate_run_records_its_settings(capsys):
    with FakeServer(max_batch=64) as srv:
        code, out, _ = bench(capsys, "--url", srv.url, "--mode", "rate", "--rate", "40", "--arrival", "gamma",
                             "--burstiness", "0.5", "--ramp-up", "0.5", "--requests", "12", "--output-tokens", "1",
                             "--json")
    result = json.loads(out)
    assert code == 0 and result["completed"] == 12 and result["burstiness"] == 0.5
    assert (result["config"]["arrival"], result["config"]["burstiness"], result["config"]["ramp_up_s"]) == \
        ("gamma", 0.5, 0.5)
    assert not any("ramp-up" in w for w in result["warnings"])  # 12 requests outlast a ramp of 40 x 0.5 / 2


def test_all_requests_failing_exits_1_with_the_reason(capsys):
    with FakeServer(fail_every=1) as srv:
        code, out, _ = bench(capsys, "--url", srv.url, "--requests", "3", "--output-tokens", "2")
    assert code == 1 and "3 of 3 requests failed" in out and "scripted failure" in out


@pytest.mark.parametrize("args,message", [
    (["--concurrency", "0"], "--concurrency must be an integer in [1, 100000]; got 0"),
    (["--mode", "rate"], "--mode rate needs --rate R"),
    (["--mode", "rate", "--rate", "-1"], "--rate must be in (0, 1e+06]; got -1.0"),
    (["--rate", "3"], "--rate applies to --mode rate only"),
    (["--mode", "burst", "--concurrency", "3"], "--concurrency applies to --mode concurrency only"),
    (["--mode", "burst", "--duration", "3"], "--mode burst sends everything at t=0"),
    (["--requests", "0"], "--requests must be an integer in [1, 10000000]; got 0"),
    (["--duration", "0"], "--duration must be in (0, 604800]; got 0.0"),
    (["--input-tokens", "x"], "--input-tokens must be N or LO:HI"),
    (["--output-tokens", "0"], "--output-tokens must be N or LO:HI"),
    (["--dataset", "csv:x"], "--dataset must be synthetic, sharegpt:PATH, jsonl:PATH or trace:PATH"),
    (["--dataset", "sharegpt:/no/such.json"], "--dataset sharegpt:/no/such.json: No such file or directory"),
    (["--slo", "ttft<3"], "--slo: cannot read 'ttft<3'"),
    (["--sample-interval", "0"], "--sample-interval must be in [0.05, 60]"),
    (["--watts-per-core", "0"], "--watts-per-core must be in (0, 1000]"),
    (["--engine-pid", "0"], "--engine-pid must be an integer in [1, 2147483647]; got 0"),
    (["--energy", "rapl"], "--energy rapl: no readable RAPL package counter"),
    (["--metrics-path", "metrics"], "--metrics-path must start with '/'"),
    (["--endpoint", "chat", "--prompt-format", "ids"], "--prompt-format ids needs --endpoint completions"),
    (["--input-tokens", "4000", "--output-tokens", "200"], "reach 4200 tokens; the endpoint allows 4096"),
    (["--tokenizer", "/no/such.gguf", "--dataset", "jsonl:/dev/null"], "--tokenizer: no such file"),
    (["--out", "/no/such/dir/r.json"], "--out: the directory /no/such/dir does not exist"),
    (["--repeats", "0"], "--repeats must be an integer in [1, 100]"),
    (["--wait-quiet", "-1"], "--wait-quiet must be in [0, 3600]"),
])
def test_bad_flags_print_one_line_naming_the_flag(server, capsys, args, message):
    code, out, err = bench(capsys, "--url", server.url, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("paretoserve bench: error: ") and message in err, err


def test_an_unreachable_url_is_one_line(capsys):
    from paretoserve.engine_process import free_port

    code, _, err = bench(capsys, "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and err.startswith("paretoserve bench: error: --url: nothing answers at")
