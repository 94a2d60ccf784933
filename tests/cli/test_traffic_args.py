"""tune's and advise's traffic flags refuse what cannot work with one line naming the flag (exit 2), before any
engine starts."""

from __future__ import annotations

import pytest

from paretoserve.cli import main
from tests.cli.test_limits import no_engine, one_line_error
from tests.report.sweeps import make_point, write_sweep


@pytest.mark.parametrize(("flags", "message"), [
    (["--peak", "3"], "--peak needs --traffic"),
    (["--traffic", "fast"], "--traffic must be a rate in requests/s or trace:PATH; got 'fast'"),
    (["--traffic", "0"], "--traffic must be a rate in (0, 1e6]"),
    (["--traffic", "5", "--peak", "2"], "--peak 2 is below --traffic 5"),
    (["--traffic", "5", "--replay-speed", "2"], "--replay-speed is for --traffic trace:PATH"),
    (["--traffic", "5", "--peak-window", "30"], "--peak-window is for --traffic trace:PATH"),
    (["--traffic", "trace:/no/such/file.jsonl"], "--traffic trace:/no/such/file.jsonl"),
    (["--traffic", "5", "--attainment", "1"], "--attainment must be in (0, 1)"),
    (["--traffic", "5", "--headroom", "-1"], "--headroom must be in [0, 10]"),
    (["--capacity", "--capacity-slo", "tpot_ms<<3"], "--capacity-slo: cannot read"),
    (["--capacity", "--capacity-slo", "p99_ttft_ms<=2000"], "--capacity-slo: capacity judges each request"),
])
def test_tune_refuses_bad_traffic_flags_before_any_engine(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.setattr("paretoserve.cli.tune_cmd.run_tune", no_engine)
    assert main(["tune", "--out", str(tmp_path / "t"), *flags]) == 2
    assert message in one_line_error(capsys)


def test_advise_takes_traffic_only_with_capacity_runs(tmp_path, capsys):
    directory = write_sweep(tmp_path / "s", [make_point(b, 10.0 * b) for b in (1, 2, 4)])
    assert main(["advise", str(directory), "--traffic", "5"]) == 2
    assert "--traffic needs --capacity-dir" in one_line_error(capsys)
