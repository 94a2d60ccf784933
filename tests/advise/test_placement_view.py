"""A placement read back (advise/placement_view.py) and shown in the terminal (advise/console.py), from a placement
tune wrote on simulated engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from paretoserve.advise.advice_file import AdviceFileError, read_advice
from paretoserve.advise.console import print_placement, size
from paretoserve.advise.placement_view import PlacementFileError, placement_file, read_placement_view
from tests.fakes.placement import write_placement


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """Read-only: tests that change a placement change a copy."""
    return write_placement(tmp_path_factory.mktemp("placement"))


def copy_of(out: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(out, tmp_path / "copy"))


def test_the_view_holds_what_placement_json_and_each_advice_say(out):
    kept = json.loads((out / "placement.json").read_text())
    view = read_placement_view(out)
    assert view.path == out / "placement.json" and view.cores == 2 and view.serve == kept["serve"]
    assert [m.name for m in view.models] == ["a", "b"]
    assert [m.advice.b_opt for m in view.models] == [12, 24]  # the simulated plateaus under tpot_ms<=150
    assert [m.max_batch for m in view.models] == [m["max_batch"] for m in kept["models"]]
    assert [m.sweep_dir for m in view.models] == [out / "a" / "sweep", out / "b" / "sweep"]
    assert view.memory.used_bytes == kept["memory"]["used_bytes"]
    assert [m.kv_bytes for m in view.memory.models] == [m["kv_bytes"] for m in kept["memory"]["models"]]
    c = view.colocation
    assert (c.placement_rps, c.time_sharing_rps, c.solo_rps, c.solo_per_device_rps, c.devices) == (8.0, 6.0, 10.0,
                                                                                                    5.0, 2)
    assert [m.interference for m in c.models] == [0.8, 0.8] and c.ratio(c.time_sharing_rps) == pytest.approx(4 / 3)
    mix = view.mix_capacity
    assert mix is not None and mix.capacity_rps == kept["mix_capacity"]["capacity_rps"]
    assert [r.rate_rps for r in mix.runs] == sorted(r["rate_rps"] for r in kept["mix_capacity"]["runs"])
    assert all(r.met == (r.rate_rps <= 6.0) for r in mix.runs)  # each model sustains 3 req/s: the mix 6


def test_a_directory_or_its_placement_json_names_the_placement_and_a_sweep_does_not(out):
    assert placement_file(out) == placement_file(out / "placement.json") == out / "placement.json"
    assert placement_file(out / "a" / "sweep") is None and placement_file(out / "a" / "advice.json") is None


def test_a_moved_placement_reads_its_advice_and_sweep_from_where_they_are_now(out, tmp_path):
    moved = copy_of(out, tmp_path)
    data = json.loads((moved / "placement.json").read_text())
    assert [m["advice"] for m in data["models"]] == ["a/advice.json", "b/advice.json"]  # from placement.json's dir
    advice = moved / "a" / "advice.json"
    advice.write_text(read_advice(advice).model_copy(update={"sweep_dir": "/nowhere/sweep"}).model_dump_json())
    view = read_placement_view(moved)
    assert [m.advice_path for m in view.models] == [moved / "a" / "advice.json", moved / "b" / "advice.json"]
    assert view.models[0].sweep_dir == moved / "a" / "sweep"  # beside its advice.json, as tune lays it out


def test_a_placement_before_its_mix_capacity_reads_without_one(out, tmp_path):
    copy = copy_of(out, tmp_path)
    data = json.loads((copy / "placement.json").read_text())
    del data["mix_capacity"]
    (copy / "placement.json").write_text(json.dumps(data))
    view = read_placement_view(copy)
    assert view.mix_capacity is None and view.to_dict()["mix_capacity"] is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda out: out / "placement.json", None),  # the file itself reads
    (lambda out: out / "a", "holds no placement.json"),
    (lambda out: out / "gone" / "placement.json", "DIR: cannot read"),
    (lambda out: _write(out, "{not json"), "is not valid JSON"),
    (lambda out: _write(out, json.dumps({"models": []})), "is not a placement that `tune --model A --model B` "
                                                          "writes (KeyError: 'memory')"),
])
def test_a_missing_or_foreign_file_is_one_line_naming_the_argument(out, tmp_path, change, message):
    path = change(copy_of(out, tmp_path))
    if message is None:
        assert len(read_placement_view(path).models) == 2
        return
    with pytest.raises(PlacementFileError, match="^DIR: ") as raised:
        read_placement_view(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_advice_names_the_argument_and_the_file(out, tmp_path):
    copy = copy_of(out, tmp_path)
    data = json.loads((copy / "placement.json").read_text())
    data["models"][1]["advice"] = "b/gone.json"
    (copy / "placement.json").write_text(json.dumps(data))
    with pytest.raises(AdviceFileError, match=f"^DIR: cannot read {copy / 'b' / 'gone.json'}"):
        read_placement_view(copy)


def test_the_terminal_shows_each_b_opt_the_memory_map_and_the_arrangements(out):
    view = read_placement_view(out)
    console = Console(width=200, record=True)
    print_placement(view, console)
    text = console.export_text()
    assert "a (share 0.50): B_opt = 12 under mean_tpot_ms<=150" in text
    assert "b (share 0.50): B_opt = 24 under mean_tpot_ms<=150" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") == 9}
    for placed, m in zip(view.models, view.memory.models, strict=True):  # weights, KV per replica, tokens, share
        assert [cell.strip() for cell in rows[placed.name].split("│")[2:9]] == [
            "1", str(m.max_batch), size(m.weights_bytes), size(m.kv_bytes), f"{m.kv_tokens:,}",
            f"{100 * (m.mem_fraction or 0):.2f} %", size(m.total_bytes)]
    assert f"used {size(view.memory.used_bytes)} of {size(view.memory.device_bytes)}" in text
    assert f"free {size(view.memory.free_bytes)}" in text
    arrangements = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") == 6}
    assert "8.00" in arrangements["placement"] and "6.00" in arrangements["time-sharing"]
    assert "1.33 x" in arrangements["time-sharing"]
    solo = arrangements["one device per model (needs 2)"]
    assert "10.00" in solo and "5.00" in solo and "1.60 x" in solo
    assert f"Mix capacity: {view.mix_capacity.capacity_rps:.3g} req/s in all" in text
    assert view.serve in text


def _write(out: Path, text: str) -> Path:
    (out / "placement.json").write_text(text)
    return out
