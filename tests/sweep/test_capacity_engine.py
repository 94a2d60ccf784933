"""`paretoserve capacity` against the real embedded engine on the bundled model: a few short runs. Asserts the
structure and the search's logic, never a speed, so that a busy machine passes too."""

from __future__ import annotations

import json

import pytest

from paretoserve.cli import main
from paretoserve.results.store import SweepStore

pytestmark = pytest.mark.integration


def test_capacity_against_the_engine(start_engine, tmp_path, capsys):
    url = start_engine("--max-batch", "2", "--ctx-per-seq", "128", "--max-queue", "2", "--threads", "1")
    out = tmp_path / "cap"
    status = main(["capacity", "--url", url, "--slo", "ttft_ms<=30000,tpot_ms<=5000", "--input-tokens", "16",
                   "--output-tokens", "8", "--requests", "8", "--start-rate", "1", "--max-runs", "3",
                   "--remeasure-budget", "0", "--resolution", "0.5", "--overload", "4", "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0 and 1 <= len(result["rates"]) <= 3 and result["runs_made"] == len(result["rates"]) + 1
    runs = {r["config"]["request_rate"]: r for r in SweepStore(out).capacity_runs() if "request_rate" in r["config"]}
    assert sorted(runs) == sorted(result["rates"])
    met = {rate for rate, r in runs.items() if r["slo_good"] >= 0.99 * r["slo_requests"]}
    assert result["capacity_rps"] == max(met)  # the highest rate that met, and every failing rate lies above it
    assert all(rate > result["capacity_rps"] for rate in set(runs) - met)
    seen = result["overload"]
    assert seen["sent"] == 8 == seen["completed"] + seen["refused"] + seen["other_errors"]
    assert seen["unanswered"] == 0 and seen["refused_with_retry_after"] == seen["refused"]
