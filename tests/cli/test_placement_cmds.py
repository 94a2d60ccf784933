"""`paretoserve advise OUT` and `paretoserve report OUT` on a placement of several models (`tune --model A --model
B`'s OUT), made on simulated engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretoserve.cli import main
from tests.fakes.placement import write_placement


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return write_placement(tmp_path_factory.mktemp("placement"))


def test_advise_prints_each_b_opt_the_memory_map_the_arrangements_and_the_mix_capacity(out, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich's width: every table whole on one line per row
    assert main(["advise", str(out)]) == 0
    text = capsys.readouterr().out
    kept = json.loads((out / "placement.json").read_text())
    assert "a (share 0.50): B_opt = 12" in text and "b (share 0.50): B_opt = 24" in text
    assert "Memory map of the device" in text and f"{kept['memory']['models'][1]['kv_tokens']:,}" in text
    assert "one device per model (needs 2)" in text and "10.00" in text and "1.60 x" in text
    assert f"Mix capacity: {kept['mix_capacity']['capacity_rps']:.3g} req/s in all" in text
    assert kept["serve"] in text


def test_advise_json_is_one_document_with_the_placements_figures(out, capsys):
    assert main(["advise", str(out / "placement.json"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    kept = json.loads((out / "placement.json").read_text())
    assert [(m["name"], m["b_opt"], m["placed"]["max_batch"]) for m in printed["models"]] == [
        ("a", 12, kept["models"][0]["max_batch"]), ("b", 24, kept["models"][1]["max_batch"])]
    assert printed["memory"] == kept["memory"]
    assert printed["colocation"]["mix_throughput_rps"] == {"placement": 8.0, "time_sharing": 6.0, "solo": 10.0,
                                                           "solo_per_device": 5.0}
    assert [m["interference"] for m in printed["colocation"]["models"]] == [0.8, 0.8]
    assert printed["mix_capacity"]["capacity_rps"] == kept["mix_capacity"]["capacity_rps"]


@pytest.mark.parametrize(("argv", "message"), [
    (["advise", "{out}", "--slo", "tpot_ms<=50"], "DIR: {out}/placement.json is a placement, shown as tune "
                                                  "measured it; --slo apply to a sweep directory"),
    (["advise", "{out}", "--ray-out", "x"], "--ray-out apply to a sweep directory"),
    (["advise", "{out}/gone/placement.json"], "DIR: cannot read {out}/gone/placement.json"),
    (["report", "{out}", "--advice", "{out}/a/advice.json"], "--advice apply to a sweep directory"),
    (["report", "{out}", "--min-efficiency", "0.2"], "--min-efficiency apply to a sweep directory"),
])
def test_what_a_placement_cannot_take_is_refused_in_one_line(out, capsys, argv, message):
    assert main([arg.format(out=out) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert message.format(out=out) in err and err.count("\n") == 1


def test_report_writes_the_page_beside_placement_json_or_where_told(out, tmp_path, capsys):
    assert main(["report", str(out), "--dpi", "40"]) == 0
    assert capsys.readouterr().out.startswith(f"report: {out / 'report.html'} (4 plots beside it)")
    html = (out / "report.html").read_text()
    assert all(f'id="{anchor}"' in html for anchor in ("memory-map", "models", "arrangements", "mix-capacity"))
    assert main(["report", str(out / "placement.json"), "-o", str(tmp_path / "page.html"), "--dpi", "40"]) == 0
    assert (tmp_path / "page.html").is_file() and (tmp_path / "page_memory_map.png").is_file()
