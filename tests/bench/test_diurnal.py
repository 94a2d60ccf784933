"""The diurnal trace generator: seeded, its arrivals follow the ramp and its bursts, and the file reads back."""

import json

import numpy as np
import pytest

from paretoserve.bench.config import TokenRange
from paretoserve.bench.diurnal import Diurnal, DiurnalError, diurnal_rows, write_diurnal
from paretoserve.bench.trace import read_trace


def expected_between(shape: Diurnal, start: float, end: float) -> float:
    """Requests the shape expects in [start, end): its rate integrated on a fine grid."""
    t = np.linspace(start, end, 20_000, endpoint=False) + (end - start) / 40_000  # midpoints
    return float(shape.rate(t).mean() * (end - start))


def within_poisson(count: int, expected: float) -> bool:
    """A Poisson count within 5 standard deviations of its mean (a seeded draw: no flakiness, only slack)."""
    return abs(count - expected) <= 5 * np.sqrt(expected) + 1


def test_the_same_seed_draws_the_same_trace_and_another_seed_another():
    shape = Diurnal(low_rps=1, peak_rps=5, duration_s=100, bursts=2, input_tokens=TokenRange(8, 64))
    assert diurnal_rows(shape) == diurnal_rows(shape)
    other = diurnal_rows(Diurnal(low_rps=1, peak_rps=5, duration_s=100, bursts=2, seed=1,
                                 input_tokens=TokenRange(8, 64)))
    assert [r.at_s for r in other] != [r.at_s for r in diurnal_rows(shape)]


def test_the_arrivals_follow_the_raised_cosine_from_low_to_peak_and_back():
    shape = Diurnal(low_rps=2, peak_rps=20, duration_s=2000, period_s=1000)
    times = np.array([r.at_s for r in diurnal_rows(shape)])
    assert times[0] == 0.0 and np.all(np.diff(times) >= 0) and times[-1] < 2000
    edges = np.linspace(0, 2000, 21)
    counts, _ = np.histogram(times, bins=edges)
    expected = [expected_between(shape, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert all(within_poisson(int(c), e) for c, e in zip(counts, expected, strict=True)), (counts, expected)
    # the shape itself: low at 0 and at each period's end, the peak half a period in
    assert shape.rate(np.array([0.0, 500.0, 1000.0, 1500.0])) == pytest.approx([2, 20, 2, 20])
    assert counts[4] + counts[5] > 5 * (counts[0] + counts[19])  # around the peak vs around the lows


def test_bursts_multiply_the_rate_inside_their_windows():
    shape = Diurnal(low_rps=5, peak_rps=5, duration_s=600, bursts=3, burst_factor=4, burst_s=20)
    assert shape.burst_windows() == [(90.0, 110.0), (290.0, 310.0), (490.0, 510.0)]
    times = np.array([r.at_s for r in diurnal_rows(shape)])
    for start, end in shape.burst_windows():
        inside = int(np.sum((times >= start) & (times < end)))
        before = int(np.sum((times >= start - 20) & (times < start)))
        assert within_poisson(inside, 4 * 5 * 20) and within_poisson(before, 5 * 20)
        assert inside > 2 * before


def test_the_file_reads_back_as_the_same_rows(tmp_path):
    shape = Diurnal(low_rps=0.5, peak_rps=4, duration_s=60, bursts=1, input_tokens=TokenRange(16, 32),
                    output_tokens=TokenRange(8, 8), seed=7)
    path = tmp_path / "sub" / "diurnal.jsonl"
    rows = write_diurnal(shape, path)
    assert read_trace(path) == rows
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"timestamp_s", "input_length", "output_length"} and first["timestamp_s"] == 0.0
    assert {r.output_tokens for r in rows} == {8} and all(16 <= r.input_tokens <= 32 for r in rows)
    assert len({r.input_tokens for r in rows}) > 1


@pytest.mark.parametrize(("kw", "flag"), [
    ({"peak_rps": 0}, "--peak-rate"),
    ({"low_rps": 6}, "--low-rate"),
    ({"low_rps": float("nan")}, "--low-rate"),
    ({"duration_s": -1}, "--duration"),
    ({"period_s": 0}, "--period"),
    ({"bursts": -1}, "--bursts"),
    ({"bursts": 2, "burst_factor": 0.5}, "--burst-factor"),
    ({"bursts": 2, "burst_s": 0}, "--burst-length"),
    ({"bursts": 20, "burst_s": 10}, "--bursts 20 x --burst-length 10 s exceed --duration 100 s"),
    ({"seed": -1}, "--seed"),
    ({"peak_rps": 9000, "duration_s": 86400}, "arrivals to draw"),
])
def test_each_bad_setting_names_its_flag(kw, flag):
    with pytest.raises(DiurnalError, match=flag.replace("(", r"\(")):
        Diurnal(**{"low_rps": 1, "peak_rps": 5, "duration_s": 100, **kw})
