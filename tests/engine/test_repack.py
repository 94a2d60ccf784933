"""--repack: the mode each recorded CPU gets, and the weights CPU_REPACK takes without AMX."""

from pathlib import Path

import pytest

from paretoserve.engine.repack import RepackError, choose_repack, cpu_flags, has_amx, repack_patterns
from paretoserve.gguf_header import TensorInfo

CPUINFO = Path(__file__).parents[1] / "data" / "cpuinfo"


def flags_of(name: str) -> frozenset[str]:
    return cpu_flags((CPUINFO / name).read_text())


def test_cpuinfo_flags_are_read_on_x86_and_arm():
    assert {"avx2", "avx512f", "amx_int8"} <= flags_of("xeon-amx.txt")
    assert "avx512f" in flags_of("epyc-avx512.txt") and "avx2" in flags_of("xeon-avx2.txt")
    assert {"asimd", "asimddp"} <= flags_of("graviton-arm.txt")
    assert cpu_flags("processor\t: 0\n") == frozenset()


@pytest.mark.parametrize("cpu, amx", [("xeon-amx.txt", True), ("epyc-avx512.txt", False),
                                      ("xeon-avx2.txt", False), ("graviton-arm.txt", False)])
def test_only_the_amx_cpu_has_amx(cpu, amx):
    assert has_amx(flags_of(cpu)) is amx


@pytest.mark.parametrize("cpu, buffers, mode", [
    # A native build on the AMX Xeon lists AMX first: drop only that one.
    ("xeon-amx.txt", ["AMX", "CPU_REPACK"], "no-amx"),
    # The same CPU with a build that has no AMX kernels keeps llama.cpp's default.
    ("xeon-amx.txt", ["CPU_REPACK"], "all"),
    # A binding that cannot list the buffers: the flags decide, and AMX gets the one setting known to work.
    ("xeon-amx.txt", None, "off"),
    ("epyc-avx512.txt", ["CPU_REPACK"], "all"),
    ("epyc-avx512.txt", None, "all"),
    ("xeon-avx2.txt", ["CPU_REPACK"], "all"),
    ("graviton-arm.txt", ["CPU_REPACK"], "all"),
])
def test_auto_mode_per_cpu(cpu, buffers, mode):
    choice = choose_repack("auto", flags_of(cpu), buffers)
    assert choice.mode == mode and choice.reason


@pytest.mark.parametrize("forced", ["all", "no-amx", "off"])
def test_a_forced_mode_wins_over_the_cpu(forced):
    assert choose_repack(forced, flags_of("xeon-amx.txt"), ["AMX", "CPU_REPACK"]).mode == forced


def test_unknown_mode_names_the_flag():
    with pytest.raises(RepackError, match=r"--repack must be one of auto, all, no-amx, off; got 'fast'"):
        choose_repack("fast", frozenset(), [])


def _weights() -> list[TensorInfo]:
    """A small Q4_K_M-like table: mixed quant types per layer, a token embedding and norms."""
    def t(name, type_name, dims):
        return TensorInfo(name=name, n_elements=dims[0] * (dims[1] if len(dims) > 1 else 1), type_name=type_name,
                          n_bytes=0, dims=dims)
    return [t("token_embd.weight", "Q4_K", (640, 262144)), t("output_norm.weight", "F32", (640,)),
            t("blk.0.attn_output.weight", "Q4_K", (1024, 640)), t("blk.1.attn_output.weight", "Q4_K", (1024, 640)),
            t("blk.0.ffn_down.weight", "Q6_K", (2048, 640)), t("blk.1.ffn_down.weight", "Q4_K", (2048, 640)),
            t("blk.0.attn_q.weight", "Q5_0", (640, 1024)), t("blk.0.attn_k.weight", "Q4_0", (640, 12)),
            t("blk.0.ffn_up.weight", "Q2_K", (640, 2048)), t("blk.0.attn_norm.weight", "F32", (640,))]


def test_patterns_take_what_cpu_repack_takes_on_avx512():
    patterns = repack_patterns(_weights(), flags_of("xeon-amx.txt"))
    # Q4_K rows by layer; Q2_K needs AVX-512; Q4_0 with 12 rows is not a multiple of 8; the embedding is never.
    assert patterns == [r"^blk\.(0|1)\.attn_output\.weight$", r"^blk\.(1)\.ffn_down\.weight$",
                        r"^blk\.(0)\.ffn_up\.weight$"]


def test_patterns_on_avx2_only_and_arm():
    assert r"^blk\.(0)\.ffn_up\.weight$" not in repack_patterns(_weights(), flags_of("xeon-avx2.txt"))
    assert repack_patterns(_weights(), flags_of("graviton-arm.txt")) == []
