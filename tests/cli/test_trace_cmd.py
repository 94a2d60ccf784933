"""`paretoserve trace` writes a diurnal trace bench reads back; every bad flag is one line naming it (exit 2)."""

import pytest

from paretoserve.bench.trace import read_trace
from paretoserve.cli import main

SHAPE = ["--low-rate", "1", "--peak-rate", "4", "--duration", "30"]


def test_trace_writes_a_file_that_bench_reads(tmp_path, capsys):
    out = tmp_path / "traces" / "day.jsonl"
    assert main(["trace", "--out", str(out), *SHAPE, "--bursts", "2", "--input-tokens", "8:16", "--seed", "5"]) == 0
    rows = read_trace(out)
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {len(rows)} requests over ") and "1 req/s at t = 0 rising to 4 req/s at 15 s" in said
    assert "2 bursts at 3x: 7.2..7.8 s, 22.2..22.8 s" in said
    assert all(8 <= r.input_tokens <= 16 and r.output_tokens == 128 for r in rows)


@pytest.mark.parametrize(("extra", "message"), [
    (["--low-rate", "-1"], "--low-rate must be in [0, 4]; got -1.0"),
    (["--peak-rate", "0"], "--peak-rate must be in (0, 10000]; got 0.0"),
    (["--duration", "0"], "--duration must be in (0, 604800]; got 0.0"),
    (["--period", "-5"], "--period must be in (0, 604800]; got -5.0"),
    (["--bursts", "-2"], "--bursts must be an integer in [0, 1000]; got -2"),
    (["--bursts", "1", "--burst-factor", "0"], "--burst-factor must be in [1, 100]; got 0.0"),
    (["--burst-length", "31"], "--burst-length must be in (0, 30]; got 31.0"),
    (["--input-tokens", "0"], "--input-tokens must be N or LO:HI"),
    (["--output-tokens", "9:3"], "--output-tokens must be N or LO:HI"),
    (["--seed", "-1"], "--seed must be an integer in"),
])
def test_each_bad_flag_is_one_line_naming_it(tmp_path, capsys, extra, message):
    out = tmp_path / "t.jsonl"
    assert main(["trace", "--out", str(out), *SHAPE, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_out_may_not_be_a_directory(tmp_path, capsys):
    assert main(["trace", "--out", str(tmp_path), *SHAPE]) == 2
    assert "is a directory" in capsys.readouterr().err
