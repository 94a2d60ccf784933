"""benchmarks/clients.py: each client's output read into one set of figures (from trimmed outputs of real runs:
GuideLLM 0.8.1, AIPerf 0.13.0 and bench against the engine, 8 requests of 32 in / 16 out), and the busy span
and CPU arithmetic over the sampled series."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "clients"


def _load(name: str):
    """A module of benchmarks/, as `python benchmarks/clients.py` imports it (its folder first on sys.path)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


clients = _load("clients")
outputs, watching = importlib.import_module("client_outputs"), importlib.import_module("client_watch")  # its own


def test_guidellm_json_is_read_from_its_successful_requests() -> None:
    f = outputs.parse_guidellm(DATA / "guidellm-0.8.1.json")
    assert (f.completed, f.failed) == (8, 0)
    assert (f.input_tokens_per_request, f.output_tokens_per_request) == (32.0, 16.0)
    assert f.output_throughput == pytest.approx(128 / 4.9159, rel=1e-4)  # output tokens over its duration
    assert f.mean_ttft_ms == pytest.approx(692.7, abs=0.1)
    assert f.p99_ttft_ms == pytest.approx(895.5, abs=0.1)
    assert f.mean_itl_ms == pytest.approx(116.3, abs=0.1)


def test_guidellm_counts_errored_and_incomplete_requests_as_failed(tmp_path: Path) -> None:
    d = json.loads((DATA / "guidellm-0.8.1.json").read_text())
    d["benchmarks"][0]["metrics"]["request_totals"].update(errored=2, incomplete=1)
    (tmp_path / "g.json").write_text(json.dumps(d))
    assert outputs.parse_guidellm(tmp_path / "g.json").failed == 3


def test_aiperf_summary_is_read_with_errors_from_either_field(tmp_path: Path) -> None:
    (tmp_path / "profile_export_aiperf.json").write_text((DATA / "aiperf-0.13.0.json").read_text())
    f = outputs.parse_aiperf(tmp_path)
    assert (f.completed, f.failed, f.output_tokens_per_request) == (8, 0, 16.0)
    assert f.output_throughput == pytest.approx(23.0, abs=0.01)
    assert (round(f.mean_ttft_ms), round(f.p99_ttft_ms)) == (729, 876)
    d = json.loads((DATA / "aiperf-0.13.0.json").read_text())
    d["error_summary"] = [{"error_details": {"code": 400}, "count": 2}, {"error_details": {"code": 500}, "count": 1}]
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(d))
    assert outputs.parse_aiperf(tmp_path).failed == 3
    d["error_request_count"] = {"unit": "requests", "avg": 4.0}
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(d))
    assert outputs.parse_aiperf(tmp_path).failed == 4


def test_bench_result_uses_vllms_names_and_tpot_as_itl() -> None:
    f = outputs.parse_bench(DATA / "bench.json")
    r = json.loads((DATA / "bench.json").read_text())
    assert (f.completed, f.failed) == (8, 0)
    assert f.input_tokens_per_request == r["total_input_tokens"] / 8
    assert (f.output_throughput, f.mean_itl_ms) == (r["output_throughput"], r["mean_tpot_ms"])


def test_the_busy_span_has_its_edges_between_samples_and_interpolates_cpu() -> None:
    watch = watching.Watch.__new__(watching.Watch)
    # t, client cpu, engine cpu, requests running + waiting, tokens generated, machine busy cpu
    watch.rows = [(0.0, 1.0, 0.0, 0, 100, 0.0), (1.0, 2.0, 0.0, 0, 100, 1.0), (2.0, 2.5, 1.0, 3, 110, 3.0),
                  (3.0, 3.0, 2.0, 2, 150, 5.0), (4.0, 3.5, 3.0, 0, 180, 7.0), (5.0, 9.0, 3.0, 0, 180, 9.0)]
    span = watch.busy_span()
    assert span["busy_s"] == pytest.approx(2.0)  # 1.5 .. 3.5
    assert span["server_output_throughput"] == pytest.approx(80 / 2.0)
    assert span["client_cpu_run_s"] == pytest.approx(3.25 - 2.25)
    assert span["engine_cpu_run_s"] == pytest.approx(2.5 - 0.5)
    assert span["other_cpu_run_s"] == pytest.approx((6.0 - 2.0) - 1.0 - 2.0)


def test_a_server_that_was_never_busy_has_no_span() -> None:
    watch = watching.Watch.__new__(watching.Watch)
    watch.rows = [(0.0, 1.0, 0.0, 0, 0, 0.0), (1.0, 2.0, 0.0, 0, 0, 1.0)]
    assert watch.busy_span() is None


def test_server_state_sums_every_label_set() -> None:
    text = ('# HELP paretoserve_requests_running x\nparetoserve_requests_running{model_name="m",replica="0"} 2.0\n'
            'paretoserve_requests_running{model_name="m",replica="1"} 3.0\n'
            'paretoserve_requests_waiting{model_name="m"} 1.0\n'
            'paretoserve_generation_tokens_total{model_name="m",replica="0"} 40.0\n'
            'paretoserve_generation_tokens_total{model_name="m",replica="1"} 2.0\n'
            'paretoserve_generation_tokens_created{model_name="m"} 1.7e9\n')

    class Client:
        def get(self, url):
            return type("R", (), {"text": text})()

    assert watching.server_state(Client(), "http://x") == (6.0, 42.0)


def test_the_table_leaves_a_dash_where_a_client_did_not_run() -> None:
    missing = clients.ClientResult(client="aiperf", cmd=[], error="not found")
    ran = clients.ClientResult(client="bench", cmd=["x"], figures=outputs.parse_bench(DATA / "bench.json"),
                               client_cpu_total_s=1.04)
    lines = clients.table([ran, missing]).splitlines()
    assert lines[0].startswith("| client | completed | failed |")
    assert lines[2].startswith("| bench | 8 | 0 |") and "| 1.0 |" in lines[2]
    assert lines[3].startswith("| aiperf | - | - |")


def test_rounds_are_shown_as_medians_with_the_token_rates_range() -> None:
    base = outputs.parse_bench(DATA / "bench.json")
    runs = [clients.ClientResult(client="bench", cmd=[], figures=outputs.Figures(**{**vars(base), "mean_ttft_ms": t}),
                                 server_output_throughput=rate) for t, rate in ((100.0, 30.0), (300.0, 50.0),
                                                                                (200.0, 40.0))]
    row = clients.table(runs).splitlines()[2].split(" | ")
    names = [c[0] for c in clients.COLUMNS]
    assert row[names.index("mean TTFT ms")] == "200"
    assert row[names.index("server tok/s")] == "40.0 (30.0-50.0)"
    assert len(clients.table(runs).splitlines()) == 3  # one row per client
