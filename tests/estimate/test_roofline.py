"""The roofline by hand: bytes and FLOPs of the bundled model, flat attention intensity, memory fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretoserve.estimate.hardware import HardwareSpec, load_hardware
from paretoserve.estimate.roofline import (
    ENGINES,
    Efficiency,
    Workload,
    default_efficiency,
    kv_bytes_per_batch,
    max_batch_fitting,
    predict,
)
from paretoserve.geometry import geometry_from_hf_config, load_geometry

CONFIGS = Path(__file__).parents[1] / "data" / "model-configs"
LLAMA_CPP = ENGINES["llama.cpp"]


def this_machine(bandwidth_gb_s: float) -> HardwareSpec:
    """The 2-core machine of the brief: read bandwidth as measured there, fp32 AVX2 peak of 2 cores at 2.45 GHz."""
    return HardwareSpec(name="cpu", description="2-core test CPU", memory_bytes=24 << 30,
                        bandwidth_bytes_per_s=bandwidth_gb_s * 1e9, peak_flops=2 * 2 * 8 * 2 * 2.45e9,
                        source="test", bandwidth_measured=True)


@pytest.fixture(scope="module")
def gemma():
    return load_geometry("default")


@pytest.fixture(scope="module")
def opt13():
    return geometry_from_hf_config(json.loads((CONFIGS / "opt-1.3b.json").read_text()), "opt-1.3b")


def test_one_token_of_the_bundled_model_reads_250_mb_and_costs_054_gflop(gemma):
    p = predict(gemma, this_machine(31), 1, Workload(32, 64), LLAMA_CPP, default_efficiency(this_machine(31)))
    total_bytes = sum(c.bytes for c in p.components)
    total_flops = sum(c.flops for c in p.components)
    assert 240e6 < total_bytes < 260e6  # this-machine.md: ~250 MB read per token at B=1
    assert 0.52e9 < total_flops < 0.56e9  # ~0.54 GFLOP per token, the 262k x 640 LM head over half of it
    lm_head = next(c for c in p.components if c.name == "lm_head")
    assert lm_head.flops == 2 * 262144 * 640


@pytest.mark.parametrize("bandwidth_gb_s", [31.0, 35.5])
def test_batch_1_on_this_machine_is_bandwidth_bound_within_the_measured_range(gemma, bandwidth_gb_s):
    """this-machine.md: B=1 decodes at 81-86 tok/s measured, under a ~140 tok/s bandwidth ceiling."""
    hw = this_machine(bandwidth_gb_s)
    p = predict(gemma, hw, 1, Workload(32, 64), LLAMA_CPP, default_efficiency(hw))
    bound = next(c for c in p.components if c.name == p.bound_by)
    assert p.bound_by == "lm_head" and bound.bound == "bandwidth"
    assert 80 <= 1 / p.step_s <= 145


def test_attention_intensity_is_flat_in_the_batch_while_the_mlp_grows(opt13):
    hw = load_hardware("h100")
    curve = [predict(opt13, hw, b, Workload(128, 128), ENGINES["vllm"], Efficiency()) for b in (1, 8, 64, 512)]
    attention = [next(c for c in p.components if c.name == "attention").intensity for p in curve]
    mlp = [next(c for c in p.components if c.name == "mlp").intensity for p in curve]
    assert max(attention) == pytest.approx(min(attention))
    assert attention[0] == pytest.approx(1.0)  # MHA in fp16: 4 h d FLOPs over 2 h d x 2 bytes per cached token
    assert mlp == sorted(mlp) and mlp[-1] > 100 * mlp[0]
    assert curve[-1].bound_by == "attention"  # the plateau: attention dominates and stays bandwidth-bound


def test_kv_bytes_per_batch_by_hand(gemma, opt13):
    assert kv_bytes_per_batch(gemma, 64, Workload(32, 64), LLAMA_CPP) == 64 * 96 * 18432
    vllm = ENGINES["vllm"]  # only 3 of Gemma 3's 18 layers keep more than the 512-token window
    assert kv_bytes_per_batch(gemma, 1, Workload(1000, 24), vllm) == 1024 * (15 * 512 + 3 * 1024)
    assert kv_bytes_per_batch(opt13, 2, Workload(100, 100), vllm) == 2 * 200 * 196608


def test_largest_batch_fitting_memory_by_hand(opt13):
    hw = load_hardware("h100-64gb")
    free = 0.9 * 64e9 - opt13.weight_bytes
    per_sequence = 403 * 196608 + 50272 * 4  # KV of 111 + 292 tokens, plus one fp32 logits row
    assert max_batch_fitting(opt13, hw, Workload(111, 292), ENGINES["vllm"]) == int(free // per_sequence)


def test_throughput_counts_the_prefill(gemma):
    hw = this_machine(31)
    p = predict(gemma, hw, 8, Workload(32, 64), LLAMA_CPP, Efficiency(step_overhead_s=0.001))
    expected = 8 * 64 / (63 * p.step_s + 8 * p.prefill_s_per_request)
    assert p.output_throughput == pytest.approx(expected)
    assert p.step_s == pytest.approx(sum(c.time_s for c in p.components) + 0.001)
