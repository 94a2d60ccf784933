"""`paretoserve report` on the command line: advice computed or read from a file, and one-line errors."""

from __future__ import annotations

import json

import pytest

from paretoserve.cli import main
from paretoserve.results.store import SweepStore
from tests.report.sweeps import make_point, write_sweep

pytestmark = pytest.mark.integration


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args, "--dpi", "40"])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_with_saved_advice(cpu_sweep, advice, tmp_path, capsys):
    saved = tmp_path / "advice.json"
    saved.write_text(json.dumps(advice.model_dump()))  # what `advise --json` prints
    code, out, err = run_report(capsys, str(cpu_sweep), "-o", str(tmp_path / "r" / "report.html"),
                                "--advice", str(saved))
    assert code == 0 and err == ""
    assert "B_opt = 16" in out and "6 plots" in out
    assert (tmp_path / "r" / "report_pareto_frontiers.png").exists()


def test_slo_flags_reach_the_advisor_and_a_failed_advice_still_renders(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "sweep", [make_point(b, t) for b, t in ((1, 85.0), (4, 110.0), (16, 250.0))])
    code, out, _ = run_report(capsys, str(sweep), "-o", str(tmp_path / "a.html"), "--slo", "tpot_ms<=40")
    assert code == 0 and "B_opt = 4" in out
    code, out, _ = run_report(capsys, str(sweep), "-o", str(tmp_path / "b.html"), "--slo", "tpot_ms<=1")
    assert code == 0 and "no recommendation: --slo: no measured batch meets mean_tpot_ms<=1" in out
    html = (tmp_path / "b.html").read_text()
    assert "No recommendation: --slo: no measured batch meets mean_tpot_ms&lt;=1" in html
    assert (tmp_path / "b_throughput_vs_batch.png").exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "DIR: no such sweep directory"),
    ("not_a_sweep", "holds no sweep.json"),
    ("empty", "has no finished point yet"),
    ("unwritable", "is not a directory; give a path whose parent is a directory"),
    ("bad_advice", "--advice: "),
    ("bad_flag", "--slo-ref-batch: Input should be greater than or equal to 1; got 0"),
    ("advice_and_slo", "--slo-multiple apply only when the report advises itself"),
])
def test_errors_are_one_line_naming_the_input(case, message, cpu_sweep, tmp_path, capsys):
    sweep, out = str(cpu_sweep), str(tmp_path / "report.html")
    extra = []
    if case == "missing":
        sweep = str(tmp_path / "nowhere")
    elif case == "not_a_sweep":
        (tmp_path / "plain").mkdir()
        sweep = str(tmp_path / "plain")
    elif case == "empty":
        SweepStore(tmp_path / "empty").open({"model": "default"}, {}, resume=False)
        sweep = str(tmp_path / "empty")
    elif case == "unwritable":
        (tmp_path / "file").write_text("")
        out = str(tmp_path / "file" / "report.html")  # a parent that is a file
    elif case == "bad_advice":
        (tmp_path / "advice.json").write_text('{"b_opt": 4}')
        extra = ["--advice", str(tmp_path / "advice.json")]
    elif case == "bad_flag":
        extra = ["--slo-ref-batch", "0"]
    else:
        (tmp_path / "advice.json").write_text("{}")
        extra = ["--advice", str(tmp_path / "advice.json"), "--slo-multiple", "3"]
    code, _, err = run_report(capsys, sweep, "-o", out, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("paretoserve report: error: ") and message in err
    assert "Traceback" not in err and not (tmp_path / "report.html").exists()
