"""`paretoserve report` on the command line: the files it writes and its one-line errors."""

from __future__ import annotations

import json

import pytest

from paretoserve.cli import main
from paretoserve.sweep.store import SweepStore


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args, "--dpi", "40"])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_with_saved_advice(cpu_sweep, advice, tmp_path, capsys):
    saved = tmp_path / "advice.json"
    saved.write_text(json.dumps(advice))
    code, out, err = run_report(capsys, str(cpu_sweep), "-o", str(tmp_path / "r" / "report.html"),
                                "--advice", str(saved))
    assert code == 0 and err == ""
    assert "B_opt = 16" in out and "6 plots" in out
    assert (tmp_path / "r" / "report_pareto_frontiers.png").exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "DIR: no such directory"),
    ("not_a_sweep", "is not a sweep directory (no sweep.json)"),
    ("empty", "has no finished point yet"),
    ("unwritable", "is not a directory; give a path whose parent is a directory"),
    ("bad_advice", "--advice: "),
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
    else:
        (tmp_path / "advice.json").write_text("{not json")
        extra = ["--advice", str(tmp_path / "advice.json")]
    code, _, err = run_report(capsys, sweep, "-o", out, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("paretoserve report: error: ") and message in err
    assert "Traceback" not in err
