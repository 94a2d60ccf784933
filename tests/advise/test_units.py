"""Each piece of the advisor's arithmetic on numbers small enough to check by hand."""

import struct

import pytest

from paretoserve.advise.bca import choose_batch, field_name, resolve_limits
from paretoserve.advise.memory import breakdown, fits, parse_size
from paretoserve.advise.pareto import non_dominated
from paretoserve.advise.table import AdviseError
from paretoserve.geometry import kv_bytes_per_token_gguf
from paretoserve.results.point import Point, to_point


def point(batch, throughput, tpot, replicas=1, **extra):
    return Point(key=f"b{batch}-r{replicas}", max_batch=batch, batch=batch, replicas=replicas,
                 output_throughput=throughput, total_token_throughput=throughput, request_throughput=throughput / 100,
                 latency_ms={"mean_tpot_ms": tpot, "p99_tpot_ms": 2 * tpot, "mean_itl_ms": tpot}, **extra)


# T(1) = 100; efficiency T(B) / (B x 100): 1.0, 0.9, 0.75, 0.5, 0.3; TPOT 10 .. 50 ms
CURVE = [point(1, 100, 10), point(2, 180, 12), point(4, 300, 15), point(8, 400, 25), point(16, 480, 50)]


def test_parse_size_units():
    assert parse_size("64GiB") == 64 * 2**30
    assert parse_size("80GB") == 80 * 10**9
    assert parse_size("512 MiB") == 512 * 2**20
    assert parse_size("1234") == 1234
    assert parse_size("1.5kb") == 1500
    for bad in ("64 gigs", "-1GB", "GB", "", "0"):
        with pytest.raises(AdviseError, match="--device-memory"):
            parse_size(bad)


def test_field_names_of_slo_terms():
    assert field_name(None, "tpot_ms") == "mean_tpot_ms"
    assert field_name("p50", "itl_ms") == "median_itl_ms"
    assert field_name("p99", "ttft_ms") == "p99_ttft_ms"


def test_absolute_slo_picks_the_largest_batch_within_it():
    limits = resolve_limits(CURVE, "tpot_ms<=25", None, 32, "tpot")
    choice = choose_batch(CURVE, limits)
    assert choice.b_opt == 8  # 25 ms <= 25
    assert [r.batch for r in choice.rejected] == [16]
    assert choice.rejected[0].reasons == ["mean_tpot_ms 50 ms > 25 (--slo)"]
    assert choice.throughput_fraction_at_b_opt == pytest.approx(400 / 480)


def test_strict_and_percentile_limits():
    assert choose_batch(CURVE, resolve_limits(CURVE, "tpot_ms<25", None, 32, "tpot")).b_opt == 4
    assert choose_batch(CURVE, resolve_limits(CURVE, "p99_tpot_ms<=30", None, 32, "tpot")).b_opt == 4


def test_relative_slo_uses_the_run_nearest_the_reference_batch():
    limits = resolve_limits(CURVE, None, 2, 4, "tpot")  # 2 x TPOT(B=4) = 30 ms
    assert limits[0].bound_ms == 30 and "B=4" in limits[0].origin
    assert choose_batch(CURVE, limits).b_opt == 8
    assert resolve_limits(CURVE, None, 2, 6, "tpot")[0].bound_ms == 30  # 6 is nearer 4 than 8 (a tie goes low)


def test_efficiency_floor_is_exclusive():
    limits = resolve_limits(CURVE, "tpot_ms<=100", None, 32, "tpot")
    assert choose_batch(CURVE, limits, min_efficiency=0.5).b_opt == 4  # 8 has exactly 0.5: not above it
    assert choose_batch(CURVE, limits, min_efficiency=0.49).b_opt == 8
    v8 = next(v for v in choose_batch(CURVE, limits, min_efficiency=0.5).verdicts if v.batch == 8)
    assert v8.efficiency == 0.5 and "batching efficiency 0.500 <= 0.5" in v8.reasons[0]


def test_bca_errors_name_the_flag():
    with pytest.raises(AdviseError, match="--slo: no measured batch meets"):
        choose_batch(CURVE, resolve_limits(CURVE, "tpot_ms<=5", None, 32, "tpot"))
    with pytest.raises(AdviseError, match="--slo: the sweep's points have no p90_tpot_ms"):
        resolve_limits(CURVE, "p90_tpot_ms<=5", None, 32, "tpot")
    with pytest.raises(AdviseError, match="--slo-metric"):
        resolve_limits(CURVE, None, 3, 32, "latency")
    with pytest.raises(AdviseError, match="--min-efficiency needs a measured point at batch 1"):
        choose_batch(CURVE[1:], [], min_efficiency=0.2)


def test_non_dominated_pairs():
    # (latency: lower is better, throughput: higher is better)
    pairs = [(10, 100), (12, 180), (11, 90), (12, 170), (30, 180)]
    assert non_dominated(pairs, x_max=False, y_max=True) == [0, 1]


def test_breakdown_and_fits():
    parts = {p.part: p.bytes for p in breakdown(100, 10, 20, 30)}
    assert parts == {"weights": 10, "kv_needed": 20, "kv_freed": 30, "rest": 40}
    assert [p.part for p in breakdown(100, None, 20, None)] == ["kv_needed", "rest"]
    assert breakdown(None, 10, 20, 30) == []
    assert fits(30, 100) == 3 and fits(0, 100) == 0


def test_record_to_point_takes_the_measured_batch_per_replica():
    record = {"key": "k", "config": {"max_batch": 256, "replicas": 2, "threads": 0, "kv_tokens": 1000},
              "max_running": 300, "output_throughput": 1.0, "total_token_throughput": 2.0, "request_throughput": 0.1,
              "mean_tpot_ms": 5.0, "std_tpot_ms": 1.0, "kv_peak_fraction": 0.5, "mean_power_w": 300.0,
              "duration": 10.0, "total_output_tokens": 1000, "completed": 10, "total_input_tokens": 500,
              "samples": [{"kv_tokens_budget": 2000}]}
    p = to_point(record, kv_bytes_per_token=4)
    assert (p.batch, p.max_batch, p.replicas) == (150, 256, 2)
    assert p.latency_ms == {"mean_tpot_ms": 5.0}  # std is not a latency a limit can use
    assert p.kv_budget_bytes == 8000 and p.kv_peak_bytes == 4000
    assert p.energy_per_output_token_j == 3.0  # 300 W x 10 s / 1000 tokens
    assert p.tokens_per_request == 150


def _gguf(path, arch="llama", layers=2, heads=8, kv_heads=2, width=256):
    def s(text):
        data = text.encode()
        return struct.pack("<Q", len(data)) + data
    entries = [s("general.architecture") + struct.pack("<I", 8) + s(arch),
               s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + s("a") + s("b"),
               s(f"{arch}.block_count") + struct.pack("<II", 4, layers),
               s(f"{arch}.attention.head_count") + struct.pack("<II", 4, heads),
               s(f"{arch}.attention.head_count_kv") + struct.pack("<II", 4, kv_heads),
               s(f"{arch}.embedding_length") + struct.pack("<II", 4, width)]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    return path


def test_kv_bytes_per_token_from_gguf_metadata(tmp_path):
    # 2 layers x 2 KV heads x (32 + 32) head sizes x 2 bytes (f16)
    assert kv_bytes_per_token_gguf(_gguf(tmp_path / "m.gguf")) == 2 * 2 * 64 * 2
    (tmp_path / "x.gguf").write_bytes(b"nope")
    assert kv_bytes_per_token_gguf(tmp_path / "x.gguf") is None


def test_repeated_points_say_whether_they_meet_the_slo_within_their_interval():
    ci = {"mean_tpot_ms": (9.0, 11.0)}
    points = [point(1, 100, 10, repeats=3, ci95=ci), point(2, 180, 19, repeats=3, ci95={"mean_tpot_ms": (17.0, 23.0)}),
              point(4, 300, 25, repeats=3, ci95={"mean_tpot_ms": (24.0, 26.0)}), point(8, 400, 12)]
    limits = resolve_limits(points, "tpot_ms<=20", None, 32, "tpot")
    verdicts = {v.batch: v.certainty for v in choose_batch(points, limits).verdicts}
    assert verdicts == {1: "within the interval", 2: "at the mean only", 4: "fails", 8: None}  # 8: one run


def test_more_replicas_win_only_past_the_noise():
    from paretoserve.advise.replicas import choose, option

    limits = resolve_limits([point(8, 400, 10)], "tpot_ms<=100", None, 32, "tpot")
    one = option(point(8, 400, 10, repeats=3, ci95={"output_throughput": (380.0, 420.0)}), limits, "output_throughput")
    tie = option(point(4, 430, 10, replicas=2, repeats=3, ci95={"output_throughput": (410.0, 450.0)}), limits,
                 "output_throughput")
    clear = option(point(4, 460, 10, replicas=2, repeats=3, ci95={"output_throughput": (440.0, 480.0)}), limits,
                   "output_throughput")
    best, decision = choose([one, tie], one, min_gain=0.05)
    assert best is one and decision.startswith("2 x 4 ties 1 x 8 within noise") and "keep 1 engine" in decision
    best, decision = choose([one, clear], one, min_gain=0.05)
    assert best is clear and decision is None
    unrepeated = option(point(4, 430, 10, replicas=2), limits, "output_throughput")
    assert choose([one, unrepeated], one, min_gain=0.05) == (unrepeated, None)  # no interval: the gain rule alone
